-- q7: highest bid, in each 10-second tumbling window the bids with the window's highest price.
-- Differs from Flink: no join with the window's maximum; TOPK(10) per window filtered to the maximum: one final row per window with an array of the winning bids (sort_col = price, col0..col3 = auction, bidder, date_time, extra).
CREATE TABLE nexmark_q7_top AS
  SELECT 1 AS k, TOPK(price, auction, bidder, date_time, extra, 10) AS top
  FROM bid
  WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 MINUTE, GRACE PERIOD 0 SECONDS)
  GROUP BY 1
  EMIT FINAL;

CREATE TABLE nexmark_q7 AS
  SELECT k, WINDOWSTART AS starttime, WINDOWEND AS endtime,
    FILTER(top, x => x->`sort_col` = top[1]->`sort_col`) AS winners
  FROM nexmark_q7_top;
