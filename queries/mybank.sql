-- MyBank: transaction alerts for a retail bank.
-- The core banking database stays the system of record. Debezium captures its transactions
-- table into bank_transactions (change data capture). In the app a user sets an alert
-- threshold, and each change is an event in user_settings ("user 123 enabled threshold $1000
-- at 12pm").
-- Derived here:
--   transactions          new transactions unwrapped from the CDC envelope, keyed by user_id
--   user_settings_latest  (a table over the user_settings topic) each user's latest event
--   user_thresholds       the threshold currently in force per user (absent when alerts are off)
--   user_alerts           each transaction above the threshold in force when it happened

-- Raw Debezium change events (JSON converter, schemas disabled: before, after, op and ts_ms
-- at the top level, decimal.handling.mode=string; the envelope's source block is not
-- needed). op: 'c' insert, 'u' update, 'd' delete, 'r' snapshot read. The Debezium key (a
-- JSON struct holding the row id) is not needed either, so no key column is declared.
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
-- transactions that already happened and must not alert; 'd' reverses one. Re-keyed by the
-- user_id of the owner, for consumers that want a user's transactions in order.
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

-- Threshold events, keyed by user. action: 'enabled' or 'changed' (both carry the threshold,
-- in the account currency) or 'disabled' (no threshold).
CREATE STREAM user_settings (
  user_id STRING KEY,
  action STRING,
  threshold DECIMAL(18,2),
  event_ts BIGINT
) WITH (KAFKA_TOPIC='user_settings', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='event_ts');

-- The same topic read as a table: each user's latest settings event (a later event of the
-- user replaces the earlier one). user_alerts joins it directly, see there.
CREATE TABLE user_settings_latest (
  user_id STRING PRIMARY KEY,
  action STRING,
  threshold DECIMAL(18,2),
  event_ts BIGINT
) WITH (KAFKA_TOPIC='user_settings', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='event_ts');

-- The threshold in force per user, for the app's settings screen: the latest one set. While
-- the latest action is 'disabled', HAVING is false and the row of the user is deleted
-- (tombstone): no alerts.
-- Pull: SELECT threshold, since_ts FROM user_thresholds WHERE user_id = 'u0042'
CREATE TABLE user_thresholds AS
  SELECT user_id,
         LATEST_BY_OFFSET(threshold) AS threshold,
         LATEST_BY_OFFSET(event_ts) AS since_ts
  FROM user_settings
  GROUP BY user_id
  HAVING LATEST_BY_OFFSET(action) <> 'disabled'
  EMIT CHANGES;

-- Alerts: each new transaction joined with its owner's latest settings, kept when alerts are
-- on and the amount is above the threshold.
-- Why a stream-table join gives "the threshold in force at that time" and never alerts on the
-- past: only the stream side produces output. Each transaction looks up the settings table
-- once, as it stands when that transaction is processed, and the query reads both topics
-- merged in timestamp order (at equal times the table first), so the table then holds every
-- settings event up to that transaction and none after it. Updating the table emits nothing
-- and never re-reads transactions already joined, so lowering the threshold at 12pm cannot
-- raise an alert for an 11am transaction. (A table-table or stream-stream join would
-- re-evaluate old transactions when the threshold changes.)
-- Why it reads the two raw topics, not transactions and user_thresholds: those are the
-- outputs of other queries, each written at its own pace; if one of them lagged behind the
-- other, a transaction could meet a threshold set after it. Reading the raw topics in one
-- query, the order is the events' own. So the CDC envelope is unwrapped again here.
-- Read by the notification service (a consumer of the user_alerts topic) and by push queries:
-- SELECT * FROM user_alerts WHERE user_id = 'u0042' EMIT CHANGES
CREATE STREAM user_alerts AS
  SELECT s.user_id AS user_id,
         t.after->txn_id AS txn_id,
         t.after->account_id AS account_id,
         t.after->amount AS amount,
         t.after->currency AS currency,
         t.after->merchant AS merchant,
         s.threshold AS threshold,
         TIMESTAMPTOSTRING(t.ts_ms, 'yyyy-MM-dd HH:mm:ss', 'UTC') AS txn_time
  FROM bank_transactions t
  JOIN user_settings_latest s ON t.after->user_id = s.user_id
  WHERE t.op = 'c' AND s.action <> 'disabled' AND t.after->amount > s.threshold
  EMIT CHANGES;
