// pgjdbc against `sluice server`, as a Java application would use it:
// connect (pgjdbc sends its own SET and reads server parameters), DDL,
// a PreparedStatement INSERT with typed parameters (reused past pgjdbc's
// prepare threshold, so it becomes a named server-side statement), a
// pull query with a parameter (a key lookup, also past the threshold), a
// push query with LIMIT, and an error.
// Prints what it got; tests/drivers.rs compares it exactly.
import java.math.BigDecimal;
import java.sql.*;

public class JdbcClient {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/sluice";
        try (Connection c = DriverManager.getConnection(url, "sluice", "")) {
            DatabaseMetaData meta = c.getMetaData();
            System.out.println("connected " + meta.getDatabaseMajorVersion());
            try (Statement s = c.createStatement()) {
                s.execute("CREATE STREAM trades (id BIGINT KEY, sym STRING, qty INT, px DOUBLE) "
                        + "WITH (kafka_topic='trades', value_format='JSON', partitions=1)");
            }
            try (PreparedStatement p = c.prepareStatement(
                    "INSERT INTO trades (id, sym, qty, px) VALUES (?, ?, ?, ?)")) {
                String[] syms = {"ACME", "INIT", "ACME", "ACME", "INIT", "ACME", "INIT"};
                for (int i = 0; i < syms.length; i++) {
                    p.setLong(1, i + 1);
                    p.setString(2, syms[i]);
                    p.setInt(3, 10 * (i + 1));
                    p.setDouble(4, 1.5 + i);
                    p.executeUpdate();
                }
            }
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE volume AS SELECT sym, SUM(qty) AS qty, COUNT(*) AS n "
                        + "FROM trades GROUP BY sym");
            }
            long deadline = System.currentTimeMillis() + 30_000;
            int lookups = 0;
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT sym, qty, n FROM volume WHERE sym = ?")) {
                while (true) {
                    lookups++;
                    p.setString(1, "ACME");
                    try (ResultSet r = p.executeQuery()) {
                        if (r.next() && r.getLong("N") == 4) {
                            System.out.println("ACME " + r.getInt("QTY") + " " + r.getLong("N"));
                            break;
                        }
                    }
                    if (System.currentTimeMillis() > deadline) {
                        System.out.println("timed out");
                        break;
                    }
                    Thread.sleep(100);
                }
                // Past the prepare threshold: a named server-side statement,
                // each execution a key lookup.
                StringBuilder got = new StringBuilder();
                for (int i = 0; i < 6; i++) {
                    p.setString(1, i % 2 == 0 ? "INIT" : "NONE");
                    lookups++;
                    try (ResultSet r = p.executeQuery()) {
                        got.append(r.next() ? " " + r.getString(1) + " " + r.getLong(3) : " -");
                    }
                }
                System.out.println("lookups" + got);
                System.out.println("executed " + lookups);
            }
            try (Statement s = c.createStatement()) {
                s.execute("SET 'auto.offset.reset'='earliest'");
                try (ResultSet r = s.executeQuery(
                        "SELECT sym, px FROM trades WHERE qty > 40 EMIT CHANGES LIMIT 2")) {
                    while (r.next()) {
                        System.out.println("push " + r.getString(1) + " " + r.getDouble(2));
                    }
                }
                try {
                    s.executeQuery("SELECT * FROM nowhere");
                } catch (SQLException e) {
                    System.out.println("error " + e.getSQLState());
                }
            }
        }
    }
}
