-- q13: bounded side input join, every bid with the side-input value of key auction % 10000.
-- Differs from Flink: the side input is a table over topic nexmark_side_input (keys 0..9999 as JSON numbers, values {"value":"<key>"}, written before the first event) and the lookup a stream-table join; the output is keyed by the join key.
CREATE TABLE side_input (key BIGINT PRIMARY KEY, value STRING)
  WITH (kafka_topic = 'nexmark_side_input', key_format = 'JSON', value_format = 'JSON', partitions = 1);

CREATE STREAM nexmark_q13 AS
  SELECT S.key AS key, B.auction AS auction, B.bidder AS bidder, B.price AS price, B.date_time AS date_time, S.value AS value
  FROM bid B
  JOIN side_input S ON B.auction % 10000 = S.key;
