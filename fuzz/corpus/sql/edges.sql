-- Odd but plausible inputs: quoting, comments, literals at their edges.
SELECT `id`, "amount" FROM `orders` WHERE `id` = 'it''s' EMIT CHANGES LIMIT 1;
SELECT CAST('1e400' AS DOUBLE) AS d, CAST(99999999999999999999 AS DECIMAL(38, 0)) AS x, CAST('x' AS INT) AS bad FROM orders;
SELECT 1/0 AS a, 5 % 0 AS b, -2147483648 / -1 AS c, 9223372036854775807 + 1 AS d FROM orders;
SELECT ARRAY[1, 2, 3][0] AS a, MAP('k' := 1)['missing'] AS m, STRUCT(a := 1)->b AS s FROM orders;
SELECT /* a comment */ id -- another
FROM orders;
SELECT 'ünïcödé 𝔘 😀 ' || id AS u FROM orders;
SELECT * FROM orders WHERE id IN ('a', 'b', 'c') AND NOT (qty IS NULL) OR amount LIKE '%1%';
SELECT $1 FROM orders;
CREATE STREAM "Quoted Name" ("weird col" INT) WITH (KAFKA_TOPIC='q', PARTITIONS=1, VALUE_FORMAT='JSON');
CREATE STREAM dec (id STRING KEY, d DECIMAL(38, 38), e DECIMAL(1, 0)) WITH (KAFKA_TOPIC='dec', PARTITIONS=1, VALUE_FORMAT='JSON');
INSERT INTO dec (id, d, e) VALUES ('x', 0.99999999999999999999999999999999999999, 9);
SELECT
