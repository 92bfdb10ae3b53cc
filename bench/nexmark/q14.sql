-- q14: bids between 1,000,000 and 50,000,000 euros, with the time of day of the bid (day, night, other; by the UTC hour) and how many 'c' characters their extra holds.
-- Differs from Flink: its count_char UDF is written as LEN(extra) - LEN(REPLACE(extra, 'c', '')), and HOUR() as the UTC hour of the epoch milliseconds.
CREATE STREAM nexmark_q14 AS
  SELECT auction, bidder,
    price * CAST(0.908 AS DECIMAL(3, 3)) AS price,
    CASE
      WHEN (UNIX_TIMESTAMP(date_time) / 3600000) % 24 >= 8 AND (UNIX_TIMESTAMP(date_time) / 3600000) % 24 <= 18 THEN 'dayTime'
      WHEN (UNIX_TIMESTAMP(date_time) / 3600000) % 24 <= 6 OR (UNIX_TIMESTAMP(date_time) / 3600000) % 24 >= 20 THEN 'nightTime'
      ELSE 'otherTime'
    END AS bid_time_type,
    date_time, extra,
    LEN(extra) - LEN(REPLACE(extra, 'c', '')) AS c_counts
  FROM bid
  WHERE price * CAST(0.908 AS DECIMAL(3, 3)) > 1000000 AND price * CAST(0.908 AS DECIMAL(3, 3)) < 50000000;
