-- q5: hot items, in each 10-second window sliding by 2 seconds the auctions with the most bids, and their number of bids.
-- Differs from Flink: no join on window start; the final counts are read back as a stream timed by window start and TOPK(100) per window keeps the largest: one final row per window with an array (sort_col = num, col0 = auction).
CREATE TABLE nexmark_q5_counts AS
  SELECT auction, AS_VALUE(auction) AS auction_id, COUNT(*) AS num, WINDOWSTART AS starttime, WINDOWEND AS endtime
  FROM bid
  WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS, RETENTION 1 MINUTE, GRACE PERIOD 0 SECONDS)
  GROUP BY auction
  EMIT FINAL;

CREATE STREAM nexmark_q5_counts_stream (auction_id BIGINT, num BIGINT, starttime BIGINT, endtime BIGINT)
  WITH (kafka_topic = 'NEXMARK_Q5_COUNTS', value_format = 'JSON', timestamp = 'starttime');

CREATE TABLE nexmark_q5_top AS
  SELECT starttime, LATEST_BY_OFFSET(endtime) AS endtime, TOPK(num, auction_id, 100) AS top
  FROM nexmark_q5_counts_stream
  WINDOW TUMBLING (SIZE 2 SECONDS, RETENTION 1 MINUTE, GRACE PERIOD 0 SECONDS)
  GROUP BY starttime
  EMIT FINAL;

CREATE TABLE nexmark_q5 AS
  SELECT starttime, endtime, FILTER(top, x => x->`sort_col` = top[1]->`sort_col`) AS hot
  FROM nexmark_q5_top;
