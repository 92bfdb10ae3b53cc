-- q17: per auction and day, the number of bids overall and in three price ranges, and the minimum, maximum, average and total price.
-- Differs from Flink: COUNT(*) FILTER (WHERE c) is written COUNT(CASE WHEN c THEN 1 END), and Flink's BIGINT AVG SUM(price) / COUNT(*).
CREATE TABLE nexmark_q17 WITH (KEY_FORMAT = 'JSON') AS
  SELECT
    auction,
    FORMAT_TIMESTAMP(date_time, 'yyyy-MM-dd') AS day,
    COUNT(*) AS total_bids,
    COUNT(CASE WHEN price < 10000 THEN 1 END) AS rank1_bids,
    COUNT(CASE WHEN price >= 10000 AND price < 1000000 THEN 1 END) AS rank2_bids,
    COUNT(CASE WHEN price >= 1000000 THEN 1 END) AS rank3_bids,
    MIN(price) AS min_price,
    MAX(price) AS max_price,
    SUM(price) / COUNT(*) AS avg_price,
    SUM(price) AS sum_price
  FROM bid
  GROUP BY auction, FORMAT_TIMESTAMP(date_time, 'yyyy-MM-dd');
