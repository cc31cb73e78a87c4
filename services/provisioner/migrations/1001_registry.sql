-- The address inventory and the registry of dedicated IPs.

CREATE TABLE inventory (
    address  inet        PRIMARY KEY,
    region   text        NOT NULL CHECK (region IN ('global', 'eu')),
    ip_id    text        UNIQUE,  -- the IP holding this address; NULL while free
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_free ON inventory (region, address) WHERE ip_id IS NULL;

CREATE TABLE ips (
    ip_id           text        PRIMARY KEY,
    account_id      text        NOT NULL,
    address         inet        NOT NULL,
    region          text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('provisioning', 'cooldown', 'released')),
    pool            text,
    rdns            text,
    auto_warmup     boolean     NOT NULL,
    warmup_schedule text,
    requested_by    text        NOT NULL UNIQUE,  -- the ip.requested event id
    provisioned_at  timestamptz NOT NULL,          -- event time
    cooldown_until  timestamptz,
    release_cause   text,                          -- the ip.release command id
    -- The ip.commands partition the release was read from: the cooldown ends on that
    -- partition's event-time clock, never on another partition's.
    cooldown_partition integer,
    released_at     timestamptz
);
CREATE INDEX ips_account_live ON ips (account_id) WHERE status <> 'released';
CREATE INDEX ips_cooldown_due ON ips (cooldown_until) WHERE status = 'cooldown';
