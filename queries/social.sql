-- MySocialMedia: a social network built as CQRS.
-- The write side only appends events: "user_123 created post 456 at 2pm" to posts,
-- "user_7 liked post 456" to likes, "user_9 commented on post 456" to comments. The topics are
-- the system of record. The tables below are the read side, served by pull and push queries.
-- Every post event is also landed in the analytics store (Parquet files).
-- Derived here:
--   live_posts         current content of every post not deleted (delete = tombstone)
--   post_likes         net likes per post (likes minus unlikes)
--   post_comments      net comments per post (comments minus deleted comments)
--   posts_with_counts  each live post with its like and comment counts
--   engagement         likes and comments merged into one stream keyed by post_id
--   trending_posts     posts with the most likes and comments in the last hour

-- Post events, keyed by author. action: 'created', 'edited' or 'deleted'.
-- Long retention (5 years): the topic is the source of truth the read side is rebuilt from.
CREATE STREAM posts (
  user_id STRING KEY,
  post_id STRING,
  action STRING,
  content STRING,
  event_ts BIGINT
) WITH (KAFKA_TOPIC='posts', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, RETENTION_MS=157680000000, TIMESTAMP='event_ts');

-- Every post event, also landed in the analytics store: Parquet files under posts/, one
-- folder per UTC day and hour of the event (dt=YYYY-MM-DD/hour=HH), with the columns of posts
-- plus ROWTIME, ROWPARTITION and ROWOFFSET; each record exactly once. The data team reads
-- them (posting activity, moderation audits) without touching the topic.
CREATE SINK posts_archive FROM posts
  WITH (CONNECTOR='parquet', LOCATION='posts');

-- Like events, keyed by post. action: 'liked' or 'unliked'. user_id is who liked.
CREATE STREAM likes (
  post_id STRING KEY,
  user_id STRING, action STRING, event_ts BIGINT
) WITH (KAFKA_TOPIC='likes', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='event_ts');

-- Comment events, keyed by post. action: 'commented' or 'deleted' (the comment).
CREATE STREAM comments (
  post_id STRING KEY,
  comment_id STRING,
  user_id STRING,
  action STRING,
  body STRING,
  event_ts BIGINT
) WITH (KAFKA_TOPIC='comments', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=6, TIMESTAMP='event_ts');

-- Current state of each post, re-keyed from author to post_id. Once a 'deleted' event arrives
-- the HAVING clause turns false and ksqlDB writes a tombstone for that post_id: the post
-- leaves this table and every table joined to it, and later events cannot bring it back.
-- Pull: SELECT * FROM live_posts WHERE post_id = 'p456'
CREATE TABLE live_posts AS
  SELECT post_id,
         LATEST_BY_OFFSET(user_id) AS author_id,
         LATEST_BY_OFFSET(content) AS content,
         EARLIEST_BY_OFFSET(event_ts) AS created_ts,
         LATEST_BY_OFFSET(event_ts) AS updated_ts
  FROM posts
  GROUP BY post_id
  HAVING SUM(CASE WHEN action = 'deleted' THEN 1 ELSE 0 END) = 0
  EMIT CHANGES;

-- Net likes per post (the app lets a user like a post once). Already keyed by post_id.
CREATE TABLE post_likes AS
  SELECT post_id,
         SUM(CASE WHEN action = 'liked' THEN 1 WHEN action = 'unliked' THEN -1 ELSE 0 END)
           AS like_count
  FROM likes
  GROUP BY post_id
  EMIT CHANGES;

-- Net comments per post. Already keyed by post_id.
CREATE TABLE post_comments AS
  SELECT post_id,
         SUM(CASE WHEN action = 'commented' THEN 1 WHEN action = 'deleted' THEN -1 ELSE 0 END)
           AS comment_count
  FROM comments
  GROUP BY post_id
  EMIT CHANGES;

-- Each live post with its counts: table-table LEFT JOINs on the primary key post_id (all three
-- tables have 6 partitions). A post with no likes yet shows 0. The tombstone of a deleted
-- post in live_posts deletes its row here too.
-- Pull: SELECT * FROM posts_with_counts WHERE post_id = 'p456'
-- Push (live feed): SELECT * FROM posts_with_counts EMIT CHANGES
CREATE TABLE posts_with_counts AS
  SELECT p.post_id AS post_id,
         p.author_id AS author_id,
         p.content AS content,
         p.created_ts AS created_ts,
         IFNULL(l.like_count, 0) AS like_count,
         IFNULL(c.comment_count, 0) AS comment_count
  FROM live_posts p
  LEFT JOIN post_likes l ON p.post_id = l.post_id
  LEFT JOIN post_comments c ON p.post_id = c.post_id
  EMIT CHANGES;

-- Likes and comments in one stream keyed by post_id, so trending needs no join.
CREATE STREAM engagement AS
  SELECT post_id, user_id, 'like' AS kind
  FROM likes
  WHERE action = 'liked'
  EMIT CHANGES;

INSERT INTO engagement
  SELECT post_id, user_id, 'comment' AS kind
  FROM comments
  WHERE action = 'commented'
  EMIT CHANGES;

-- Trending: likes and comments per post in the last hour, a window every 5 minutes. Only posts
-- with at least 50 interactions are kept, and the feed ranks them by engagement.
-- Push (live feed): SELECT * FROM trending_posts EMIT CHANGES
-- Pull: SELECT * FROM trending_posts WHERE post_id = 'p456' AND WINDOWSTART >= 1700000000000
CREATE TABLE trending_posts AS
  SELECT post_id,
         SUM(CASE WHEN kind = 'like' THEN 1 ELSE 0 END) AS likes_last_hour,
         SUM(CASE WHEN kind = 'comment' THEN 1 ELSE 0 END) AS comments_last_hour,
         COUNT(*) AS engagement
  FROM engagement
  WINDOW HOPPING (SIZE 1 HOUR, ADVANCE BY 5 MINUTES, GRACE PERIOD 10 MINUTES)
  GROUP BY post_id
  HAVING COUNT(*) >= 50
  EMIT CHANGES;
