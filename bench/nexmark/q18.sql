-- q18: find last bid, each bidder's latest bid on each auction.
-- Differs from Flink: ROW_NUMBER() ... ORDER BY dateTime DESC <= 1 is LATEST_BY_OFFSET per (auction, bidder), the same since the topic is in time order; a table keyed by (auction, bidder).
CREATE TABLE nexmark_q18 WITH (KEY_FORMAT = 'JSON') AS
  SELECT auction, bidder,
    LATEST_BY_OFFSET(price) AS price,
    LATEST_BY_OFFSET(channel) AS channel,
    LATEST_BY_OFFSET(url) AS url,
    LATEST_BY_OFFSET(date_time) AS date_time,
    LATEST_BY_OFFSET(extra) AS extra
  FROM bid
  GROUP BY auction, bidder;
