-- q3: local item suggestion, the auctions of category 10 whose seller lives in Oregon, Idaho or California, with the seller's name, city and state.
-- Differs from Flink: a stream-stream join WITHIN (1 MINUTE, 10 SECONDS) instead of an unbounded one (sellers are at most ~5 s old at the generator's default rate); states are lower case in the crate's events; the output is keyed by seller (ksqlDB requires the join key in the projection).
CREATE STREAM nexmark_q3 AS
  SELECT A.seller AS seller, P.name AS name, P.city AS city, P.state AS state, A.id AS id
  FROM auction A
  JOIN person P WITHIN (1 MINUTE, 10 SECONDS) GRACE PERIOD 0 SECONDS ON A.seller = P.id
  WHERE A.category = 10 AND (P.state = 'or' OR P.state = 'id' OR P.state = 'ca');
