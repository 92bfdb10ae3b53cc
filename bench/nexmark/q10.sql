-- q10: every bid with its day ('yyyy-MM-dd') and minute ('HH:mm'), in UTC, the columns Flink partitions its files by.
-- Differs from Flink: the rows go to a topic, not to a filesystem sink partitioned by dt and hm.
CREATE STREAM nexmark_q10 AS
  SELECT auction, bidder, price, date_time, extra,
    FORMAT_TIMESTAMP(date_time, 'yyyy-MM-dd') AS dt,
    FORMAT_TIMESTAMP(date_time, 'HH:mm') AS hm
  FROM bid;
