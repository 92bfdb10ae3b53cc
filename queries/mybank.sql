-- MyBank: transaction alerts for a retail bank.
-- The core banking database stays the system of record. Debezium captures its transactions
-- table into bank_transactions (change data capture). In the app a user sets an alert
-- threshold, and each change is an event in user_settings ("user 123 enabled threshold $1000
-- at 12pm").
-- Derived here:
--   transactions     new transactions unwrapped from the CDC envelope, keyed by user_id
--   user_thresholds  the threshold currently in force per user (absent when alerts are off)
--   user_alerts      each transaction above the threshold in force when it happened

-- Raw Debezium change events (JSON converter, schemas disabled: before, after, op and ts_ms
-- at the top level, decimal.handling.mode=string). op: 'c' insert, 'u' update, 'd' delete,
-- 'r' snapshot read. The Debezium key (a JSON struct holding the row id) is not needed, so
-- no key column is declared.
CREATE STREAM bank_transactions (
  before STRUCT<txn_id BIGINT, account_id STRING, user_id STRING, amount DECIMAL(18,2),
                currency STRING, merchant STRING>,
  after STRUCT<txn_id BIGINT, account_id STRING, user_id STRING, amount DECIMAL(18,2),
               currency STRING, merchant STRING>,
  op STRING,
  ts_ms BIGINT
) WITH (KAFKA_TOPIC='bank_transactions', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='ts_ms');

-- New transactions only (op = 'c'): snapshot reads ('r') and later corrections ('u') are
-- transactions that already happened and must not alert. Re-keyed by the user_id of the
-- owner, so it is co-partitioned with user_thresholds (6 partitions each).
-- Push: SELECT * FROM transactions EMIT CHANGES
CREATE STREAM transactions WITH (KAFKA_TOPIC='transactions', PARTITIONS=6) AS
  SELECT after->user_id AS user_id,
         after->txn_id AS txn_id,
         after->account_id AS account_id,
         after->amount AS amount,
         after->currency AS currency,
         after->merchant AS merchant,
         ts_ms
  FROM bank_transactions
  WHERE op = 'c'
  PARTITION BY after->user_id
  EMIT CHANGES;

-- Threshold events, keyed by user. action: 'enabled', 'changed' or 'disabled'.
-- The threshold is in the account currency and may be omitted on 'disabled'.
CREATE STREAM user_settings (
  user_id STRING KEY,
  action STRING,
  threshold DECIMAL(18,2),
  event_ts BIGINT
) WITH (KAFKA_TOPIC='user_settings', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='event_ts');

-- The threshold in force per user: the latest one set. LATEST_BY_OFFSET skips NULLs, so
-- re-enabling without an amount restores the previous threshold. While the latest action is
-- 'disabled', HAVING is false and the row of the user is deleted (tombstone): no alerts.
-- Pull: SELECT threshold FROM user_thresholds WHERE user_id = 'u123'
CREATE TABLE user_thresholds AS
  SELECT user_id,
         LATEST_BY_OFFSET(threshold) AS threshold,
         LATEST_BY_OFFSET(event_ts) AS since_ts
  FROM user_settings
  GROUP BY user_id
  HAVING LATEST_BY_OFFSET(action) <> 'disabled'
  EMIT CHANGES;

-- Alerts: each transaction joined with the threshold of its owner, kept when the amount is
-- above it.
-- Why a stream-table join gives "the threshold in force at that time" and never alerts on the
-- past: only the stream side produces output. Each transaction looks up user_thresholds once,
-- as the table stands when that transaction is processed (inputs are processed in timestamp
-- order, so the table then holds every settings event up to that transaction). Updating the
-- table emits nothing and never re-reads transactions already joined, so lowering the
-- threshold at 12pm cannot raise an alert for an 11am transaction. A table-table join or a
-- stream-stream join would re-evaluate old transactions when the threshold changes.
-- Read by the notification service (a consumer of the user_alerts topic) and by push queries:
-- SELECT * FROM user_alerts WHERE user_id = 'u123' EMIT CHANGES
CREATE STREAM user_alerts AS
  SELECT t.user_id AS user_id,
         t.txn_id AS txn_id,
         t.account_id AS account_id,
         t.amount AS amount,
         t.currency AS currency,
         t.merchant AS merchant,
         s.threshold AS threshold,
         TIMESTAMPTOSTRING(t.ts_ms, 'yyyy-MM-dd HH:mm:ss', 'UTC') AS txn_time
  FROM transactions t
  JOIN user_thresholds s ON t.user_id = s.user_id
  WHERE t.amount > s.threshold
  EMIT CHANGES;
