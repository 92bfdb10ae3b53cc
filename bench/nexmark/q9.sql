-- q9: winning bids, each auction with its highest bid made between its start and its expiry (the earliest of equal highest bids).
-- Differs from Flink: a stream-stream join with bids up to 10 s after the auction instead of an unbounded one; ROW_NUMBER() <= 1 is TOPK(price, ..., 1) (computed once; ties keep the earliest); a table keyed by auction id.
CREATE TABLE nexmark_q9 AS
  SELECT A.id AS id,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col0` AS item_name,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col1` AS description,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col2` AS initial_bid,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col3` AS reserve,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col4` AS date_time,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col5` AS expires,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col6` AS seller,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col7` AS category,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col8` AS extra,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col9` AS bidder,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`sort_col` AS price,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col10` AS bid_date_time,
    TOPK(B.price, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires, A.seller, A.category, A.extra,
              B.bidder, B.date_time, B.extra, 1)[1]->`col11` AS bid_extra
  FROM auction A
  JOIN bid B WITHIN (0 SECONDS, 10 SECONDS) GRACE PERIOD 0 SECONDS ON A.id = B.auction
  WHERE B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id;
