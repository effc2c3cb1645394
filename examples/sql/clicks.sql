SET 'pipeline.name' = 'clicks-to-blackhole';
SET 'execution.checkpointing.interval' = '10s';

CREATE TABLE clicks (
  user_id BIGINT,
  url STRING
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '10',
  'fields.user_id.min' = '1',
  'fields.user_id.max' = '100'
);

CREATE TABLE clicks_raw (user_id BIGINT, url STRING) WITH ('connector' = 'blackhole');
CREATE TABLE clicks_per_user (user_id BIGINT, clicks BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO clicks_raw SELECT user_id, url FROM clicks;
INSERT INTO clicks_per_user SELECT user_id, COUNT(*) FROM clicks GROUP BY user_id;
