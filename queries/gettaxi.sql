-- GetTaxi: ride hailing (IoT).
-- The apps of riders (user_position) and of drivers (taxi_position) report GPS positions every
-- few seconds. A position is worthless after minutes, so both topics keep only one hour; the
-- raw positions also go to the analytics store (Parquet files) for cost computation.
-- region is a small map cell computed by the app: the 6-character geohash of the position
-- (about 1.2 x 0.6 km).
-- Derived here:
--   taxi_locations        latest position and status of each taxi
--   user_locations        latest position and status of each user
--   region_activity       both position streams merged and keyed by region (no join needed)
--   region_supply_demand  per region and 5-minute hopping window: waiting users, free taxis
--   surge_pricing         per region and window: demand/supply ratio and price multiplier
--   taxi_offers           each waiting user paired with the free taxis of the same region
--   nearest_taxi          per user and minute: distance to the nearest free taxi (the estimate)
-- and two sinks to the analytics store: taxi_position_archive, user_position_archive.

-- Rider positions. status: 'browsing', 'waiting' (asked for a ride) or 'riding'.
CREATE STREAM user_position (
  user_id STRING KEY,
  lat DOUBLE, lon DOUBLE, region STRING, status STRING, event_ts BIGINT
) WITH (KAFKA_TOPIC='user_position', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=8, RETENTION_MS=3600000, TIMESTAMP='event_ts');

-- Taxi positions. status: 'free' or 'busy'.
CREATE STREAM taxi_position (
  taxi_id STRING KEY,
  lat DOUBLE, lon DOUBLE, region STRING, status STRING, event_ts BIGINT
) WITH (KAFKA_TOPIC='taxi_position', KEY_FORMAT='KAFKA', VALUE_FORMAT='JSON',
        PARTITIONS=8, RETENTION_MS=3600000, TIMESTAMP='event_ts');

-- Where each taxi is now. Pull: SELECT lat, lon, status FROM taxi_locations WHERE taxi_id = 't009'
CREATE TABLE taxi_locations AS
  SELECT taxi_id,
         LATEST_BY_OFFSET(lat) AS lat, LATEST_BY_OFFSET(lon) AS lon,
         LATEST_BY_OFFSET(region) AS region,
         LATEST_BY_OFFSET(status) AS status,
         LATEST_BY_OFFSET(event_ts) AS event_ts
  FROM taxi_position
  GROUP BY taxi_id
  EMIT CHANGES;

-- Where each user is now. Pull: SELECT lat, lon, status FROM user_locations WHERE user_id = 'u00001'
CREATE TABLE user_locations AS
  SELECT user_id,
         LATEST_BY_OFFSET(lat) AS lat, LATEST_BY_OFFSET(lon) AS lon,
         LATEST_BY_OFFSET(region) AS region,
         LATEST_BY_OFFSET(status) AS status,
         LATEST_BY_OFFSET(event_ts) AS event_ts
  FROM user_position
  GROUP BY user_id
  EMIT CHANGES;

-- Users and taxis in one stream keyed by region, so supply and demand are counted by a single
-- aggregation instead of joining two windowed tables. Read by region_supply_demand.
-- Two queries write into it (CREATE ... AS and INSERT INTO), each at its own pace, so a user
-- position may land after a slightly later taxi position: harmless, because the windowed
-- aggregation below accepts records up to its grace period (30 s) late and its counts do
-- not depend on arrival order.
CREATE STREAM region_activity AS
  SELECT region, user_id AS entity_id, 'user' AS entity_type, status
  FROM user_position
  PARTITION BY region
  EMIT CHANGES;

INSERT INTO region_activity
  SELECT region, taxi_id AS entity_id, 'taxi' AS entity_type, status
  FROM taxi_position
  PARTITION BY region
  EMIT CHANGES;

-- Demand and supply per region over the last 5 minutes, refreshed every minute: distinct users
-- seen waiting and distinct taxis seen free (CASE without ELSE yields NULL, which
-- COUNT_DISTINCT ignores). Windowed table: key (region, WINDOWSTART, WINDOWEND).
CREATE TABLE region_supply_demand AS
  SELECT region,
         COUNT_DISTINCT(CASE WHEN entity_type = 'user' AND status = 'waiting'
                             THEN entity_id END) AS waiting_users,
         COUNT_DISTINCT(CASE WHEN entity_type = 'taxi' AND status = 'free'
                             THEN entity_id END) AS free_taxis
  FROM region_activity
  WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE, GRACE PERIOD 30 SECONDS)
  GROUP BY region
  EMIT CHANGES;

-- Surge price multiplier per region and window, computed from the two counts (no join).
-- Push: SELECT region, WINDOWSTART, surge_multiplier FROM surge_pricing EMIT CHANGES
-- Pull: SELECT * FROM surge_pricing WHERE region = 'u09tvp' AND WINDOWSTART >= 1700000000000
CREATE TABLE surge_pricing AS
  SELECT region,
         waiting_users,
         free_taxis,
         CASE WHEN free_taxis = 0 THEN NULL
              ELSE ROUND(CAST(waiting_users AS DOUBLE) / free_taxis, 2) END AS demand_ratio,
         CASE WHEN waiting_users = 0 THEN 1.0
              WHEN free_taxis = 0 OR waiting_users >= 2 * free_taxis THEN 2.0
              WHEN waiting_users * 2 >= free_taxis * 3 THEN 1.5
              WHEN waiting_users > free_taxis THEN 1.2
              ELSE 1.0 END AS surge_multiplier
  FROM region_supply_demand
  EMIT CHANGES;

-- Free taxis near a waiting user: stream-stream join on region (both sides re-keyed by
-- region) of positions at most 5 seconds apart (a taxi reports every few seconds, so each
-- free taxi of the region shows up; older positions are stale), then GEO_DISTANCE (great
-- circle, km) keeps the taxis within 1 km. An offer is emitted when the later of the two
-- positions arrives, with that position's time.
-- The dispatcher picks the closest: SELECT taxi_id, distance_km FROM taxi_offers
--   WHERE user_id = 'u00001' EMIT CHANGES
CREATE STREAM taxi_offers AS
  SELECT u.region AS region,
         u.user_id AS user_id,
         t.taxi_id AS taxi_id,
         GEO_DISTANCE(u.lat, u.lon, t.lat, t.lon, 'KM') AS distance_km
  FROM user_position u
  JOIN taxi_position t WITHIN 5 SECONDS GRACE PERIOD 10 SECONDS ON u.region = t.region
  WHERE u.status = 'waiting' AND t.status = 'free'
    AND GEO_DISTANCE(u.lat, u.lon, t.lat, t.lon, 'KM') <= 1
  EMIT CHANGES;

-- Estimate for a user: nearest free taxi distance (and how many are near) per minute.
-- Pull: SELECT nearest_km, taxis_nearby FROM nearest_taxi WHERE user_id = 'u00001'
CREATE TABLE nearest_taxi AS
  SELECT user_id,
         MIN(distance_km) AS nearest_km,
         COUNT_DISTINCT(taxi_id) AS taxis_nearby
  FROM taxi_offers
  WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
  GROUP BY user_id
  EMIT CHANGES;

-- The raw positions, as they came, to Parquet files in the analytics store
-- (LOCATION/dt=YYYY-MM-DD/hour=HH/...), where the cost of each ride is computed later in batch.
CREATE SINK taxi_position_archive FROM taxi_position
  WITH (CONNECTOR='parquet', LOCATION='taxi_position');

CREATE SINK user_position_archive FROM user_position
  WITH (CONNECTOR='parquet', LOCATION='user_position');
