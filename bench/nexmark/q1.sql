-- q1: currency conversion, every bid with its price turned from dollars to euros (x 0.908, as a DECIMAL with 3 places).
CREATE STREAM nexmark_q1 AS
  SELECT auction, bidder, price * CAST(0.908 AS DECIMAL(3, 3)) AS price, date_time, extra
  FROM bid;
