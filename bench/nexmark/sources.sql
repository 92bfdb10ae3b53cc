-- The Nexmark sources: one topic per event type, written by the benchmark
-- harness with value = the `nexmark` crate's event as JSON (serde field
-- names, matched case-insensitively), no key, record time = date_time.
-- date_time and expires are epoch milliseconds in the JSON; TIMESTAMP
-- columns read them as such (Flink's TIMESTAMP(3)), and date_time is the
-- event time (ROWTIME) of every query.

CREATE STREAM person (
  id BIGINT,
  name STRING,
  email_address STRING,
  credit_card STRING,
  city STRING,
  state STRING,
  date_time TIMESTAMP,
  extra STRING
) WITH (kafka_topic='nexmark_person', value_format='JSON', timestamp='date_time', partitions=1);

CREATE STREAM auction (
  id BIGINT,
  item_name STRING,
  description STRING,
  initial_bid BIGINT,
  reserve BIGINT,
  date_time TIMESTAMP,
  expires TIMESTAMP,
  seller BIGINT,
  category BIGINT,
  extra STRING
) WITH (kafka_topic='nexmark_auction', value_format='JSON', timestamp='date_time', partitions=1);

CREATE STREAM bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  url STRING,
  date_time TIMESTAMP,
  extra STRING
) WITH (kafka_topic='nexmark_bid', value_format='JSON', timestamp='date_time', partitions=1);
