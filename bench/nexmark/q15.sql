-- q15: per day, the number of bids, distinct bidders and distinct auctions, overall and in three price ranges (< 10,000, < 1,000,000, the rest).
-- Differs from Flink: COUNT(...) FILTER (WHERE c) is written COUNT(CASE WHEN c THEN ... END) (COUNT and COUNT_DISTINCT skip NULLs).
CREATE TABLE nexmark_q15 AS
  SELECT
    FORMAT_TIMESTAMP(date_time, 'yyyy-MM-dd') AS day,
    COUNT(*) AS total_bids,
    COUNT(CASE WHEN price < 10000 THEN 1 END) AS rank1_bids,
    COUNT(CASE WHEN price >= 10000 AND price < 1000000 THEN 1 END) AS rank2_bids,
    COUNT(CASE WHEN price >= 1000000 THEN 1 END) AS rank3_bids,
    COUNT_DISTINCT(bidder) AS total_bidders,
    COUNT_DISTINCT(CASE WHEN price < 10000 THEN bidder END) AS rank1_bidders,
    COUNT_DISTINCT(CASE WHEN price >= 10000 AND price < 1000000 THEN bidder END) AS rank2_bidders,
    COUNT_DISTINCT(CASE WHEN price >= 1000000 THEN bidder END) AS rank3_bidders,
    COUNT_DISTINCT(auction) AS total_auctions,
    COUNT_DISTINCT(CASE WHEN price < 10000 THEN auction END) AS rank1_auctions,
    COUNT_DISTINCT(CASE WHEN price >= 10000 AND price < 1000000 THEN auction END) AS rank2_auctions,
    COUNT_DISTINCT(CASE WHEN price >= 1000000 THEN auction END) AS rank3_auctions
  FROM bid
  GROUP BY FORMAT_TIMESTAMP(date_time, 'yyyy-MM-dd');
