-- Logs: logging and metrics aggregation for a fleet of microservices.
-- Every service writes one JSON line per request it served; a log shipper on each host
-- (Fluent Bit, Vector, ...) sends them to request_logs, keyed by host, at high volume.
-- Instead of indexing every line to compute dashboards, the metrics are aggregated as the
-- lines arrive, and only the aggregates (plus the raw lines in cheap Parquet files) are kept.
-- Derived here:
--   service_metrics   per service and minute: requests, errors, average/max latency, slowest
--   service_minutes   per service and minute, once the minute is over: requests and errors
--   error_alerts      the finished minutes in which a service's server errors exceeded 5%
--                     (the on-call pager reads this topic)
--   slow_requests     every request slower than 2 seconds, for a look at its trace
-- and the raw lines in the analytics store (request_logs_archive).

-- One line per request. level: 'INFO', 'WARN' (4xx) or 'ERROR' (5xx). status: the HTTP
-- status; latency_ms: time to serve it. A day of lines is plenty here: the archive keeps them.
CREATE STREAM request_logs (
  host STRING KEY,
  service STRING, level STRING, method STRING, path STRING,
  status INT, latency_ms INT, bytes BIGINT, trace_id STRING, event_ts BIGINT
) WITH (KAFKA_TOPIC='request_logs', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, RETENTION_MS=86400000, TIMESTAMP='event_ts');

-- Requests, errors and latency per service and minute (tumbling windows), updated on every
-- line: a dashboard polls it. server_errors counts 5xx answers, client_errors 4xx ones.
-- slowest_ms: the three largest latencies (Sluice has no percentile aggregate; TOPK is exact).
-- Windowed table: key (service, WINDOWSTART, WINDOWEND).
-- Pull: SELECT * FROM service_metrics WHERE service = 'payments' AND WINDOWSTART >= 1700000000000
CREATE TABLE service_metrics AS
  SELECT service,
         COUNT(*) AS requests,
         SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS server_errors,
         SUM(CASE WHEN status >= 400 AND status < 500 THEN 1 ELSE 0 END) AS client_errors,
         AVG(latency_ms) AS avg_latency_ms,
         MAX(latency_ms) AS max_latency_ms,
         TOPK(latency_ms, 3) AS slowest_ms
  FROM request_logs
  WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
  GROUP BY service
  EMIT CHANGES;

-- Each service's minute once it is over: EMIT FINAL holds a minute back until stream time (the
-- largest event time seen) passes its end plus the grace period, then emits it once, final.
-- error_pct: server errors in % of the requests, one decimal.
-- RETENTION: as in ksqlDB, a window is kept size + grace after its start unless told otherwise,
-- and a window that has expired by the time it closes is never emitted; with that default the
-- minute would close and expire at the same instant and only a record at exactly end + grace
-- would emit it. Two minutes keep each window until well after it closes.
-- Pull: SELECT * FROM service_minutes WHERE service = 'payments'
CREATE TABLE service_minutes AS
  SELECT service,
         COUNT(*) AS requests,
         SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS server_errors,
         ROUND(100 * CAST(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*), 1)
           AS error_pct
  FROM request_logs
  WINDOW TUMBLING (SIZE 1 MINUTE, RETENTION 2 MINUTES, GRACE PERIOD 10 SECONDS)
  GROUP BY service
  EMIT FINAL;

-- Error-rate alerts: the finished minutes in which server errors exceeded 5% of at least 20
-- requests. Filtering the final minutes (rather than a HAVING on the live aggregation) gives
-- one alert per bad minute, never one that flaps while the minute is still filling up.
-- The on-call pager consumes the error_alerts topic (where, as for any filtered table, a
-- finished minute below the threshold is a tombstone: a record without value, to skip).
-- Push: SELECT * FROM error_alerts EMIT CHANGES
CREATE TABLE error_alerts AS
  SELECT service, requests, server_errors, error_pct
  FROM service_minutes
  WHERE requests >= 20 AND server_errors * 20 > requests
  EMIT CHANGES;

-- Slow requests, keyed by service, with the trace id to look up the request's spans.
-- Push: SELECT * FROM slow_requests WHERE service = 'checkout' EMIT CHANGES
CREATE STREAM slow_requests AS
  SELECT service, host, method, path, status, latency_ms, trace_id
  FROM request_logs
  WHERE latency_ms > 2000
  PARTITION BY service
  EMIT CHANGES;

-- Every line, as it came, to Parquet files in the analytics store (LOCATION/dt=.../hour=..),
-- for ad-hoc questions and long-term retention.
CREATE SINK request_logs_archive FROM request_logs
  WITH (CONNECTOR='parquet', LOCATION='request_logs');
