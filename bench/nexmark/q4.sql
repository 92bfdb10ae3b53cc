-- q4: average price per category, the mean over the category's auctions of each auction's highest bid made between its start and its expiry.
-- Differs from Flink: a stream-stream join with bids up to 10 s after the auction (auctions last under 0.4 s at the generator's default rate) instead of an unbounded one; Flink's BIGINT AVG is written SUM / COUNT.
CREATE TABLE nexmark_q4_max WITH (KEY_FORMAT = 'JSON') AS
  SELECT A.id AS id, A.category AS category, MAX(B.price) AS final
  FROM auction A
  JOIN bid B WITHIN (0 SECONDS, 10 SECONDS) GRACE PERIOD 0 SECONDS ON A.id = B.auction
  WHERE B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.category;

CREATE TABLE nexmark_q4 AS
  SELECT category, SUM(final) / COUNT(final) AS final
  FROM nexmark_q4_max
  GROUP BY category;
