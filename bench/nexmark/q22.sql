-- q22: every bid with the first three directories of its URL.
-- Note: ksqlDB arrays are 1-based, so Flink's SPLIT_INDEX(url, '/', 3) is SPLIT(url, '/')[4].
CREATE STREAM nexmark_q22 AS
  SELECT auction, bidder, price, channel,
    SPLIT(url, '/')[4] AS dir1,
    SPLIT(url, '/')[5] AS dir2,
    SPLIT(url, '/')[6] AS dir3
  FROM bid;
