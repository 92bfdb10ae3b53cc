-- MovieFlix: video streaming.
-- While a show plays, every player sends a heartbeat every few seconds (show_position,
-- keyed by user_id). The catalog service publishes the shows catalog (shows, keyed by
-- show_id). The recommender service publishes a short list of shows per user.
-- The raw show_position topic is also landed in the analytics store (a connector, not SQL).
-- Derived here:
--   resume_points    where user U left show S: the latest position per (user_id, show_id)
--   show_views       every heartbeat enriched with the title and genre
--   user_profiles    real-time profile per user: watch time, shows started and finished,
--                    completion ratio, genre histogram (favourite genres)
--   recommendations  shows to suggest per user (low volume), pushed to the apps

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

-- Resume point: the latest position per (user, show), with no join. Keyed by both columns.
-- Pull: SELECT position_ms FROM resume_points WHERE user_id = 'u42' AND show_id = 's7'
CREATE TABLE resume_points AS
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
-- reaches 90% of its duration. COUNT_DISTINCT is approximate (HyperLogLog, < 1% error).
-- Heartbeats are periodic, so the genre histogram is proportional to watch time per genre:
-- its largest entries are the favourite genres of the user.
-- Pull: SELECT watch_time_ms, completion_ratio, genre_heartbeats FROM user_profiles
--       WHERE user_id = 'u42'
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
         LATEST_BY_OFFSET(genre) AS last_genre
  FROM show_views
  GROUP BY user_id
  EMIT CHANGES;

-- Recommendations per user, written by the recommender service (trained on the analytics
-- store and on user_profiles) a few times a day per user: low volume, few partitions.
-- Push: SELECT show_ids FROM recommendations WHERE user_id = 'u42' EMIT CHANGES
CREATE TABLE recommendations (
  user_id STRING PRIMARY KEY,
  show_ids ARRAY<STRING>,
  reason STRING,
  model_version STRING,
  generated_ts BIGINT
) WITH (KAFKA_TOPIC='recommendations', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON', PARTITIONS=4);
