-- Event time per consumer and partition: the latest event time read on each partition of
-- each subscription. An entity is judged on its own partition's clock, never on another
-- partition's; a step that acts on no single partition (a sweep over idle entities, inbox
-- retention) uses the slowest partition's clock, and nothing until every partition has
-- been read (`watermark` NULL: the partition is known, nothing read on it yet).
CREATE TABLE partition_clock (
    consumer  text        NOT NULL,  -- service/topic, as Consumer.name
    partition integer     NOT NULL,
    watermark timestamptz,
    -- How many partitions the topic has, once known (from the consumer's metadata): until
    -- then nobody can tell that a partition nothing was read on exists at all, so no clock
    -- safe for every partition is given.
    partitions integer,
    PRIMARY KEY (consumer, partition)
);
