-- MovieFlix: video streaming.
-- While a show plays, every player sends a heartbeat every few seconds (show_position,
-- keyed by user_id). The catalog service publishes the shows catalog (shows, keyed by
-- show_id). Every heartbeat is also landed in the analytics store (Parquet files), where the
-- data team trains models and computes royalties.
-- Derived here:
--   resume_points      where user U left show S: the latest position per (user_id, show_id)
--   show_views         every heartbeat enriched with the title and genre
--   user_profiles      real-time profile per user: watch time, shows started and finished,
--                      completion ratio, genre histogram, the shows the user started
--   user_tastes        the favourite genre of each user (the top of the genre histogram)
--   show_completion    per show: how many users started it, how many finished it
--   genre_picks        per genre: the well-completed shows (most viewers finish them)
--   recommendations    per user: the well-completed shows of the favourite genre that the
--                      user has not started yet (low volume), pushed to the apps

-- Player heartbeats. watched_ms = playback time since the previous heartbeat of the session,
-- computed by the player (a stateless engine cannot recover it from positions after seeks).
-- High volume: 32 partitions, keyed by user_id so the heartbeats of one user stay in order.
CREATE STREAM show_position (
  user_id STRING KEY,
  show_id STRING,
  position_ms BIGINT,
  duration_ms BIGINT,
  watched_ms BIGINT,
  device STRING,
  event_ts BIGINT
) WITH (KAFKA_TOPIC='show_position', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=32, TIMESTAMP='event_ts');

-- Shows catalog: latest row per show_id (compacted topic). 32 partitions like show_position,
-- so the stream-table join below is co-partitioned once heartbeats are re-keyed by show_id.
CREATE TABLE shows (
  show_id STRING PRIMARY KEY,
  title STRING,
  genre STRING,
  duration_ms BIGINT,
  release_year INT
) WITH (KAFKA_TOPIC='shows', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON', PARTITIONS=32);

-- Every heartbeat, landed in the analytics store: Parquet files under show_position/,
-- one folder per UTC day and hour of the heartbeat (dt=YYYY-MM-DD/hour=HH), with the
-- columns of show_position plus ROWTIME, ROWPARTITION and ROWOFFSET. Each record lands
-- exactly once.
CREATE SINK show_position_archive FROM show_position
  WITH (CONNECTOR='parquet', LOCATION='show_position');

-- Resume point: the latest position per (user, show), with no join. Keyed by both columns
-- (a JSON key: the KAFKA key format holds a single column).
-- Pull: SELECT position_ms FROM resume_points WHERE user_id = 'u0042' AND show_id = 's07'
CREATE TABLE resume_points WITH (KEY_FORMAT='JSON') AS
  SELECT user_id,
         show_id,
         LATEST_BY_OFFSET(position_ms) AS position_ms,
         LATEST_BY_OFFSET(duration_ms) AS duration_ms,
         LATEST_BY_OFFSET(position_ms) * 10 >= LATEST_BY_OFFSET(duration_ms) * 9 AS finished,
         LATEST_BY_OFFSET(device) AS last_device,
         LATEST_BY_OFFSET(event_ts) AS last_seen_ts
  FROM show_position
  GROUP BY user_id, show_id
  EMIT CHANGES;

-- Heartbeats enriched with the catalog (stream-table join, re-keyed by show_id first).
-- Each heartbeat sees the catalog as it is when the heartbeat arrives. Catalog edits never
-- re-emit old heartbeats. LEFT JOIN: a show missing from the catalog still counts as watch
-- time, under genre 'unknown'. Push: SELECT * FROM show_views EMIT CHANGES
CREATE STREAM show_views AS
  SELECT p.show_id AS show_id,
         p.user_id AS user_id,
         s.title AS title,
         IFNULL(s.genre, 'unknown') AS genre,
         p.position_ms AS position_ms,
         p.duration_ms AS duration_ms,
         p.watched_ms AS watched_ms
  FROM show_position p
  LEFT JOIN shows s ON p.show_id = s.show_id
  EMIT CHANGES;

-- Real-time user profile, re-keyed by user_id. A show counts as finished once a heartbeat
-- reaches 90% of its duration. COUNT_DISTINCT is exact in Sluice (ksqlDB estimates it).
-- Heartbeats are periodic, so the genre histogram (heartbeats per genre) is proportional to
-- watch time per genre. COLLECT_SET keeps first-seen order: sorted for a stable answer.
-- Pull: SELECT watch_time_ms, completion_ratio, genre_heartbeats FROM user_profiles
--       WHERE user_id = 'u0042'
CREATE TABLE user_profiles AS
  SELECT user_id,
         SUM(watched_ms) AS watch_time_ms,
         COUNT_DISTINCT(show_id) AS shows_started,
         COUNT_DISTINCT(CASE WHEN position_ms * 10 >= duration_ms * 9 THEN show_id END)
           AS shows_finished,
         ROUND(CAST(COUNT_DISTINCT(CASE WHEN position_ms * 10 >= duration_ms * 9
                                        THEN show_id END) AS DOUBLE)
               / COUNT_DISTINCT(show_id), 3) AS completion_ratio,
         HISTOGRAM(genre) AS genre_heartbeats,
         ARRAY_SORT(COLLECT_SET(show_id)) AS started_show_ids
  FROM show_views
  GROUP BY user_id
  EMIT CHANGES;

-- The favourite genre of each user: the genre with the most heartbeats, the first in
-- alphabetical order on a tie (a lambda keeps the genres whose count is the largest).
-- A projection of user_profiles: same key, updated with it.
-- Pull: SELECT favourite_genre FROM user_tastes WHERE user_id = 'u0042'
CREATE TABLE user_tastes AS
  SELECT user_id,
         ARRAY_SORT(FILTER(MAP_KEYS(genre_heartbeats),
                           g => genre_heartbeats[g] = ARRAY_MAX(MAP_VALUES(genre_heartbeats))))[1]
           AS favourite_genre,
         started_show_ids
  FROM user_profiles
  EMIT CHANGES;

-- Per show, from the resume points: how many users started it and how many are at its end
-- now. An aggregation over a table: when a resume point changes (a user finishes the show,
-- or starts it again), its old row is retracted before the new one is added.
-- Keyed by show_id alone, so back to the KAFKA key format (a JSON key is inherited otherwise).
-- Pull: SELECT viewers, finishes FROM show_completion WHERE show_id = 's07'
CREATE TABLE show_completion WITH (KEY_FORMAT='KAFKA') AS
  SELECT show_id,
         COUNT(*) AS viewers,
         SUM(CASE WHEN finished THEN 1 ELSE 0 END) AS finishes
  FROM resume_points
  GROUP BY show_id
  EMIT CHANGES;

-- Per genre, the well-completed shows: at least one finish, and at least a third of the
-- users who started the show are at its end now (most viewers never reach the end of a
-- show). A table-table join with the catalog on its primary key, then a table aggregation by
-- genre: a show enters or leaves its genre's list as its completion changes. COLLECT_LIST
-- (it can retract) in sorted order. HAVING deletes the row of a genre whose last pick left
-- (without it the row would stay, with an empty list).
-- Pull: SELECT show_ids FROM genre_picks WHERE genre = 'drama'
CREATE TABLE genre_picks AS
  SELECT s.genre AS genre,
         ARRAY_SORT(COLLECT_LIST(c.show_id)) AS show_ids
  FROM show_completion c
  JOIN shows s ON c.show_id = s.show_id
  WHERE c.finishes >= 1 AND c.finishes * 3 >= c.viewers
  GROUP BY s.genre
  HAVING COUNT(*) > 0
  EMIT CHANGES;

-- Recommendations per user: the well-completed shows of the user's favourite genre that the
-- user has not started. A foreign-key table-table join (user_tastes.favourite_genre against
-- the key of genre_picks): a row changes when the user's tastes change or when the picks of
-- their genre change. A user whose favourite genre has no picks yet has no row; one who
-- started all the picks has an empty list. Low volume: few partitions.
-- Pull: SELECT show_ids FROM recommendations WHERE user_id = 'u0042'
-- Push: SELECT show_ids FROM recommendations WHERE user_id = 'u0042' EMIT CHANGES
CREATE TABLE recommendations WITH (PARTITIONS=4) AS
  SELECT t.user_id AS user_id,
         t.favourite_genre AS genre,
         ARRAY_SORT(ARRAY_EXCEPT(g.show_ids, t.started_show_ids)) AS show_ids
  FROM user_tastes t
  JOIN genre_picks g ON t.favourite_genre = g.genre
  EMIT CHANGES;
