CREATE TABLE orders (
  id BIGINT,
  amount DECIMAL(10, 2)
) WITH (
  'connector' = 'kafka',
  'topic' = '${ordersTopic}',
  'properties.bootstrap.servers' = '${kafkaBrokers}',
  'properties.security.protocol' = 'SASL_SSL',
  'properties.sasl.mechanism' = 'PLAIN',
  'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="${env:KAFKA_USER}" password="${env:KAFKA_PASSWORD}";',
  'scan.startup.mode' = 'latest-offset',
  'format' = 'json'
);
CREATE TABLE big_orders (id BIGINT, amount DECIMAL(10, 2)) WITH ('connector' = 'blackhole');
INSERT INTO big_orders SELECT id, amount FROM orders WHERE amount > 100;
