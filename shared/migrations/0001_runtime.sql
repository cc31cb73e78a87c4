-- The consumer runtime every service stands on: inbox (what was applied), outbox (what to
-- publish); the event-time clocks are in 0002. Applied in each service's own schema.

-- Low-volume inbox: one row per applied input event, kept until an operator prunes it.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- High-volume inbox, partitioned by the event's UTC day so that retention drops whole
-- partitions instead of deleting rows. A replayed event has the same time, so the same day.
CREATE TABLE inbox_daily (
    consumer  text NOT NULL,
    event_day date NOT NULL,
    event_id  text NOT NULL,
    PRIMARY KEY (consumer, event_day, event_id)
) PARTITION BY RANGE (event_day);

-- Transactional outbox. `txid` orders rows by commit visibility: the relay reads only rows
-- whose transaction is older than every transaction still running, so a row committed late
-- with a low `position` is never skipped.
CREATE TABLE outbox (
    position   bigserial   PRIMARY KEY,
    txid       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    relay      text        NOT NULL,
    topic      text        NOT NULL,
    key        text,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_relay_order ON outbox (relay, txid, position);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One channel per schema: a relay is woken by its own service's rows only.
    PERFORM pg_notify('ipfleet_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

