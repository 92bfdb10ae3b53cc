-- q20: expand bid with auction, every bid on an auction of category 10 joined with that auction's columns.
-- Differs from Flink: a stream-stream join WITHIN (10 SECONDS, 1 SECOND) instead of an unbounded one (bids go to auctions ~0.2 s old or ahead at the generator's default rate); the output is keyed by auction.
CREATE STREAM nexmark_q20 AS
  SELECT B.auction AS auction, B.bidder AS bidder, B.price AS price, B.channel AS channel, B.url AS url,
    B.date_time AS bid_date_time, B.extra AS bid_extra,
    A.item_name AS item_name, A.description AS description, A.initial_bid AS initial_bid, A.reserve AS reserve,
    A.date_time AS auction_date_time, A.expires AS expires, A.seller AS seller, A.category AS category,
    A.extra AS auction_extra
  FROM bid B
  JOIN auction A WITHIN (10 SECONDS, 1 SECOND) GRACE PERIOD 0 SECONDS ON B.auction = A.id
  WHERE A.category = 10;
