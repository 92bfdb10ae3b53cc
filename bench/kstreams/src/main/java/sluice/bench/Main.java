package sluice.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Sluice's benchmark peer: each of the benchmark's Sluice statements written as a Kafka
 * Streams topology, run until SIGTERM/SIGINT. Input keys are UTF-8 strings, values JSON;
 * output values are JSON objects with UPPER CASE field names, as ksqlDB and Sluice write them.
 */
public final class Main {
    private static final Serde<String> STRING = Serdes.String();
    private static final Serde<JsonNode> JSON = Json.SERDE;

    private static final List<String> TOPOLOGIES = List.of("project", "window_count", "join", "table_agg");

    private static final String USAGE = String.join("\n",
            "usage: java -jar sluice-kstreams-bench.jar --topology T --bootstrap HOST:PORT",
            "           --application-id ID --input TOPIC [--table TOPIC] --output TOPIC",
            "           --state-dir DIR [--threads N] [--cache-bytes N] [--commit-interval-ms N]",
            "",
            "  --topology        project | window_count | join | table_agg",
            "  --bootstrap       Kafka bootstrap servers",
            "  --application-id  Kafka Streams application.id (consumer group, internal topic prefix)",
            "  --input           the views topic (the taxis topic for table_agg)",
            "  --table           the shows topic; required for join, not allowed otherwise",
            "  --output          output topic (must already exist)",
            "  --state-dir       Kafka Streams state.dir",
            "  --threads         num.stream.threads (default 2)",
            "  --cache-bytes     statestore.cache.max.bytes, the record cache (default 10485760; 0 = off:",
            "                    every update is written)",
            "  --commit-interval-ms  commit.interval.ms (default 1000)");

    private Main() {}

    // ------------------------------------------------------------------ topologies

    /**
     * Sluice: {@code CREATE STREAM out AS SELECT show_id, user_id, position FROM views
     * WHERE position >= 1800;}
     *
     * <p>Key: the show id, unchanged. Value: {@code {"USER_ID":..,"POSITION":..}}.
     */
    static void project(StreamsBuilder builder, String views, String output) {
        builder.stream(views, Consumed.with(STRING, JSON))
                .filter((show, v) -> {
                    JsonNode position = Json.field(v, "position");
                    return position.isNumber() && position.doubleValue() >= 1800;
                })
                .mapValues(v -> (JsonNode) Json.object()
                        .<ObjectNode>set("USER_ID", Json.field(v, "user_id"))
                        .set("POSITION", Json.field(v, "position")))
                .to(output, Produced.with(STRING, JSON));
    }

    /**
     * Sluice: {@code CREATE TABLE out AS SELECT show_id, COUNT(*) AS views FROM views
     * WINDOW TUMBLING (SIZE 60 SECONDS, GRACE PERIOD 10 SECONDS) GROUP BY show_id;}
     *
     * <p>Key: Kafka Streams' time-windowed key, the show id's UTF-8 bytes then the window
     * start in ms as 8 bytes big-endian (what ksqlDB and Sluice write for a tumbling window).
     * Value: {@code {"VIEWS":n}}: with the record cache, once per cache flush or commit while
     * the window is open; without it, once per view.
     *
     * <p>The views are keyed by show id, the GROUP BY column, so the count needs no
     * repartition topic (Sluice does not repartition either).
     */
    static void windowCount(StreamsBuilder builder, String views, String output) {
        builder.stream(views, Consumed.with(STRING, JSON))
                // Rows whose GROUP BY key is NULL are dropped, as ksqlDB does.
                .filter((show, v) -> show != null)
                .groupByKey(Grouped.with("views-by-show", STRING, JSON))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(60), Duration.ofSeconds(10)))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("views-per-show")
                        .withKeySerde(STRING).withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(n -> n == null ? null : (JsonNode) Json.object().put("VIEWS", n))
                .to(output, Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, 60_000L), JSON));
    }

    /**
     * Sluice: {@code CREATE STREAM out AS SELECT v.show_id, v.user_id, v.position, s.title,
     * s.genre FROM views v JOIN shows s ON v.show_id = s.show_id;}
     *
     * <p>Key: the show id. Value: {@code {"USER_ID":..,"POSITION":..,"TITLE":..,"GENRE":..}}.
     * A view whose show is not (yet) in the table is dropped: an inner join. The views are
     * keyed by show id and both topics have the same partitions, so the join needs no
     * repartition topic (Sluice does not repartition either).
     */
    static void join(StreamsBuilder builder, String views, String shows, String output) {
        KTable<String, JsonNode> showTable = builder.table(shows, Consumed.with(STRING, JSON),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("shows")
                        .withKeySerde(STRING).withValueSerde(JSON));
        KStream<String, JsonNode> viewsByShow = builder.stream(views, Consumed.with(STRING, JSON))
                .mapValues(v -> (JsonNode) Json.object()
                        .<ObjectNode>set("USER_ID", Json.field(v, "user_id"))
                        .set("POSITION", Json.field(v, "position")));
        viewsByShow
                .join(showTable,
                        (view, show) -> (JsonNode) ((ObjectNode) view)
                                .<ObjectNode>set("TITLE", Json.field(show, "title"))
                                .set("GENRE", Json.field(show, "genre")),
                        Joined.with(STRING, JSON, JSON, "views-by-show"))
                .to(output, Produced.with(STRING, JSON));
    }

    /**
     * Sluice: {@code CREATE TABLE taxis (...) WITH (kafka_topic='taxis');
     * CREATE TABLE out AS SELECT region, COUNT(*) AS taxis FROM taxis GROUP BY region;}
     *
     * <p>Key: the region. Value: {@code {"TAXIS":n}}. A taxi that moves is subtracted from
     * its old region (which may go down to {@code {"TAXIS":0}}) and added to the new one.
     *
     * <p>The one topology with a repartition topic: a table grouped by a column that is not
     * its key must send each change to the task of its new (and old) group; Kafka Streams
     * has no way around it (nor has ksqlDB), while Sluice, one process, needs none.
     */
    static void tableAgg(StreamsBuilder builder, String taxis, String output) {
        builder.table(taxis, Consumed.with(STRING, JSON),
                        Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("taxis")
                                .withKeySerde(STRING).withValueSerde(JSON))
                // A NULL region gives a null key, which Kafka Streams drops (as ksqlDB does).
                .groupBy((taxi, v) -> KeyValue.pair(Json.text(v, "region"), v),
                        Grouped.with("taxis-by-region", STRING, JSON))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("taxis-per-region")
                        .withKeySerde(STRING).withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(n -> n == null ? null : (JsonNode) Json.object().put("TAXIS", n))
                .to(output, Produced.with(STRING, JSON));
    }

    // ------------------------------------------------------------------ command line

    private static final class UsageError extends Exception {
        UsageError(String message) {
            super(message);
        }
    }

    private static Map<String, String> parse(String[] args) throws UsageError {
        List<String> known = List.of("--topology", "--bootstrap", "--application-id", "--input", "--table",
                "--output", "--state-dir", "--threads", "--cache-bytes", "--commit-interval-ms");
        Map<String, String> opts = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            String value;
            int eq = name.indexOf('=');
            if (name.startsWith("--") && eq > 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (i + 1 < args.length) {
                value = args[++i];
            } else {
                throw new UsageError(known.contains(name) ? name + " needs a value" : "unknown argument: " + name);
            }
            if (!known.contains(name)) {
                throw new UsageError("unknown argument: " + name);
            }
            if (value.isEmpty()) {
                throw new UsageError(name + " needs a value");
            }
            if (opts.put(name, value) != null) {
                throw new UsageError(name + " given twice");
            }
        }
        for (String required : List.of("--topology", "--bootstrap", "--application-id", "--input", "--output",
                "--state-dir")) {
            if (!opts.containsKey(required)) {
                throw new UsageError("missing " + required);
            }
        }
        String topology = opts.get("--topology");
        if (!TOPOLOGIES.contains(topology)) {
            throw new UsageError("unknown topology: " + topology + " (one of " + String.join(", ", TOPOLOGIES) + ")");
        }
        if (topology.equals("join") != opts.containsKey("--table")) {
            throw new UsageError(topology.equals("join") ? "join needs --table (the shows topic)"
                    : "--table is only for the join topology");
        }
        String threads = opts.getOrDefault("--threads", "2");
        try {
            if (Integer.parseInt(threads) < 1) {
                throw new NumberFormatException();
            }
        } catch (NumberFormatException e) {
            throw new UsageError("--threads must be a positive integer, got " + threads);
        }
        opts.put("--threads", threads);
        opts.put("--cache-bytes", nonNegative(opts, "--cache-bytes", "10485760"));
        opts.put("--commit-interval-ms", nonNegative(opts, "--commit-interval-ms", "1000"));
        return opts;
    }

    /** The option's value (or its default) if it is a non-negative integer. */
    private static String nonNegative(Map<String, String> opts, String name, String otherwise) throws UsageError {
        String value = opts.getOrDefault(name, otherwise);
        try {
            if (Long.parseLong(value) < 0) {
                throw new NumberFormatException();
            }
        } catch (NumberFormatException e) {
            throw new UsageError(name + " must be a non-negative integer, got " + value);
        }
        return value;
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length == 1 && (args[0].equals("--help") || args[0].equals("-h"))) {
            System.out.println(USAGE);
            return;
        }
        Map<String, String> opts;
        try {
            opts = parse(args);
        } catch (UsageError e) {
            System.err.println("kstreams: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, opts.get("--application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("--bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(opts.get("--commit-interval-ms")));
        // The record cache: updates of one key between commits are coalesced into one
        // output (and one changelog write); 0 writes every update.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(opts.get("--cache-bytes")));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(opts.get("--threads")));
        props.put(StreamsConfig.STATE_DIR_CONFIG, opts.get("--state-dir"));
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // As ksqlDB runs Kafka Streams (ksql.streams.topology.optimization=all):
        // a source table's topic is its changelog, repartitions are merged.
        props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);

        StreamsBuilder builder = new StreamsBuilder();
        String input = opts.get("--input");
        String output = opts.get("--output");
        switch (opts.get("--topology")) {
            case "project" -> project(builder, input, output);
            case "window_count" -> windowCount(builder, input, output);
            case "join" -> join(builder, input, opts.get("--table"), output);
            case "table_agg" -> tableAgg(builder, input, output);
            default -> throw new IllegalStateException();
        }
        Topology topology = builder.build(props);

        KafkaStreams streams = new KafkaStreams(topology, props);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicBoolean failed = new AtomicBoolean();
        AtomicBoolean announced = new AtomicBoolean();
        CountDownLatch done = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && announced.compareAndSet(false, true)) {
                System.out.println("kstreams: RUNNING");
                System.out.flush();
            } else if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                done.countDown();
            }
        });
        Thread hook = new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }, "kstreams-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        try {
            streams.start();
        } catch (RuntimeException e) {
            System.err.println("kstreams: cannot start: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        done.await();
        if (failed.get()) {
            Throwable e = failure.get();
            System.err.println("kstreams: ERROR" + (e == null ? "" : ": " + e));
            if (e != null) {
                e.printStackTrace();
            }
            System.exit(1); // runs the hook, which closes the streams
        }
    }
}
