-- q19: auction TOP-10 price, each auction's ten highest bids.
-- Differs from Flink: ROW_NUMBER() <= 10 is TOPK(price, ..., 10): one row per auction with an array of its top bids, highest first (sort_col = price, col0..col4 = bidder, channel, url, date_time, extra).
CREATE TABLE nexmark_q19 AS
  SELECT auction, TOPK(price, bidder, channel, url, date_time, extra, 10) AS top_bids
  FROM bid
  GROUP BY auction;
