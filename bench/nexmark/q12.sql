-- q12: per bidder, the number of bids in each 10-second tumbling window, with the window's start and end.
-- Differs from Flink: event-time windows, not processing-time ones (Sluice has no PROCTIME()); one final row per window (EMIT FINAL).
CREATE TABLE nexmark_q12 AS
  SELECT bidder, COUNT(*) AS bid_count,
    WINDOWSTART AS starttime,
    WINDOWEND AS endtime
  FROM bid WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 MINUTE, GRACE PERIOD 0 SECONDS)
  GROUP BY bidder
  EMIT FINAL;
