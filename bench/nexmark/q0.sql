-- q0: pass-through, every bid's auction, bidder, price, time and extra (measures the engine's own cost).
CREATE STREAM nexmark_q0 AS
  SELECT auction, bidder, price, date_time, extra
  FROM bid;
