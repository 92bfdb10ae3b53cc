-- q8: monitor new users, the persons who opened an auction in the same 10-second tumbling window in which they registered, with that window's start.
-- Differs from Flink: no join of two windowed aggregations; persons and auctions joined WITHIN 10 SECONDS, same-window pairs grouped per person and window (EMIT FINAL); name is an aggregate (a GROUP BY needs one).
CREATE TABLE nexmark_q8 AS
  SELECT P.id AS id, EARLIEST_BY_OFFSET(P.name) AS name, WINDOWSTART AS starttime
  FROM person P
  JOIN auction A WITHIN 10 SECONDS GRACE PERIOD 0 SECONDS ON P.id = A.seller
  WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 MINUTE, GRACE PERIOD 0 SECONDS)
  WHERE UNIX_TIMESTAMP(P.date_time) / 10000 = UNIX_TIMESTAMP(A.date_time) / 10000
  GROUP BY P.id
  EMIT FINAL;
