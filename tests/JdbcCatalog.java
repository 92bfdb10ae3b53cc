// pgjdbc's DatabaseMetaData against `sluice server`: what DBeaver,
// Metabase and every JDBC BI tool call to show a database's tables,
// their columns and primary keys. Prints what it got;
// tests/postgres_tools.rs compares it exactly.
import java.sql.*;

public class JdbcCatalog {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/shop";
        try (Connection c = DriverManager.getConnection(url, "sluice", "")) {
            DatabaseMetaData meta = c.getMetaData();
            System.out.println("catalog " + c.getCatalog());
            try (ResultSet r = meta.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (r.next()) {
                    System.out.println("table " + r.getString("TABLE_CAT") + " " + r.getString("TABLE_SCHEM")
                            + " " + r.getString("TABLE_NAME") + " " + r.getString("TABLE_TYPE")
                            + " [" + r.getString("REMARKS") + "]");
                }
            }
            try (ResultSet r = meta.getColumns(null, null, "orders", "%")) {
                while (r.next()) {
                    System.out.println("column " + r.getString("COLUMN_NAME") + " " + r.getInt("DATA_TYPE")
                            + " " + r.getString("TYPE_NAME") + " " + r.getInt("ORDINAL_POSITION")
                            + " " + r.getString("IS_NULLABLE") + " [" + r.getString("REMARKS") + "]");
                }
            }
            try (ResultSet r = meta.getPrimaryKeys(null, null, "orders")) {
                while (r.next()) {
                    System.out.println("pk " + r.getString("TABLE_NAME") + " " + r.getString("COLUMN_NAME")
                            + " " + r.getInt("KEY_SEQ") + " " + r.getString("PK_NAME"));
                }
            }
            try (ResultSet r = meta.getPrimaryKeys(null, null, "payments")) {
                System.out.println("stream pk " + r.next());
            }
        }
    }
}
