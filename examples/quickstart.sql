-- A stream of page views, keyed by user.
CREATE STREAM pageviews (user_id STRING KEY, page STRING, duration_ms BIGINT)
  WITH (KAFKA_TOPIC='pageviews', VALUE_FORMAT='JSON', PARTITIONS=1);

-- Views per page in 1-minute tumbling windows, updated on every view.
CREATE TABLE views_per_minute AS
  SELECT page, COUNT(*) AS views, SUM(duration_ms) AS total_ms
  FROM pageviews WINDOW TUMBLING (SIZE 1 MINUTE)
  GROUP BY page EMIT CHANGES;

-- Long views only, with the page name upper-cased.
CREATE STREAM long_views AS
  SELECT user_id, UCASE(page) AS page, duration_ms FROM pageviews WHERE duration_ms > 10000;

INSERT INTO pageviews (ROWTIME, user_id, page, duration_ms) VALUES (1000, 'alice', 'home', 3000);
INSERT INTO pageviews (ROWTIME, user_id, page, duration_ms) VALUES (2000, 'bob', 'home', 15000);
INSERT INTO pageviews (ROWTIME, user_id, page, duration_ms) VALUES (61000, 'alice', 'cart', 12000);

PRINT 'VIEWS_PER_MINUTE' FROM BEGINNING;
PRINT 'LONG_VIEWS' FROM BEGINNING;
