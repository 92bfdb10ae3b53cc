-- q21: bids from a known channel or with a channel_id in their URL, with that channel's id (the four hot channels have fixed ids).
-- Note: ksqlDB's REGEXP_EXTRACT takes the pattern first, Flink's the string.
CREATE STREAM nexmark_q21 AS
  SELECT auction, bidder, price, channel,
    CASE
      WHEN LCASE(channel) = 'apple' THEN '0'
      WHEN LCASE(channel) = 'google' THEN '1'
      WHEN LCASE(channel) = 'facebook' THEN '2'
      WHEN LCASE(channel) = 'baidu' THEN '3'
      ELSE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', url, 2)
    END AS channel_id
  FROM bid
  WHERE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', url, 2) IS NOT NULL
     OR LCASE(channel) IN ('apple', 'google', 'facebook', 'baidu');
