-- q2: selection, the auction and price of the bids on auctions whose id is a multiple of 123.
CREATE STREAM nexmark_q2 AS
  SELECT auction, price
  FROM bid
  WHERE auction % 123 = 0;
