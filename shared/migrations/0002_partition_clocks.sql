-- Event time per consumer and partition: the latest event time read on each partition of
-- each subscription. An entity is judged on its own partition's clock, never on another
-- partition's; a step that acts on no single partition (a sweep over idle entities, inbox
-- retention) uses the slowest partition's clock, and nothing until every partition has
-- been read (`watermark` NULL: the partition is known, nothing read on it yet).
-- `caught_up`: the subscription's committed offset has reached the partition's end, so
-- nothing is waiting there. A partition caught up with nothing ever read on it (empty)
-- holds nobody back. Cleared by every batch read on it.
CREATE TABLE partition_clock (
    consumer  text        NOT NULL,  -- service/topic, as Consumer.name
    partition integer     NOT NULL,
    watermark timestamptz,
    caught_up boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (consumer, partition)
);
