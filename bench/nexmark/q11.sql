-- q11: per bidder and session (bids less than 10 s apart), the number of bids and the session's start and end.
-- Differs from Flink: WINDOWEND is the last bid, so SESSION_END is WINDOWEND + 10000; the grace period equals the gap to work around Sluice closing EMIT FINAL sessions at WINDOWEND + grace (not + gap + grace).
CREATE TABLE nexmark_q11 AS
  SELECT bidder, COUNT(*) AS bid_count,
    WINDOWSTART AS starttime,
    WINDOWEND + 10000 AS endtime
  FROM bid WINDOW SESSION (10 SECONDS, GRACE PERIOD 10 SECONDS)
  GROUP BY bidder
  EMIT FINAL;
