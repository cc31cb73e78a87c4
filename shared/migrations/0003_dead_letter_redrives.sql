-- Dead letters re-published by `ipfleet dlq redrive`, one row per DLQ message (its topic,
-- partition and offset). A row is claimed before its message is sent and confirmed once the
-- broker acknowledged it, so no run sends a dead letter a second time, even after an
-- interrupted run (a claim left unconfirmed is reported, and re-sent only when asked).
-- In each service's schema: a dead letter is claimed where the consumer that dead-lettered
-- it keeps its inbox (the error.consumer header names it).
CREATE TABLE dead_letter_redrives (
    dlq_topic    text        NOT NULL,  -- the contract name, e.g. ip.requested.dlq
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    PRIMARY KEY (dlq_topic, partition, "offset")
);
