-- The warm-up part of each IP's view, written by the warmup service and read by every
-- service that emits `ip.state_changed` (each event carries the IP's whole view).
CREATE TABLE ip_warmup_views (
    ip_id            text        PRIMARY KEY,
    status           text        NOT NULL,  -- not_started | warming | suspended | completed
    warmup           jsonb       NOT NULL,  -- the contract's `warmup` object
    reputation_score integer     NOT NULL DEFAULT 50 CHECK (reputation_score BETWEEN 0 AND 100),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
