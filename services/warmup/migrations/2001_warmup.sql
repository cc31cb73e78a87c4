-- The warmup service's own tables: its copy of the registry with each IP's warm-up state,
-- the warm-up part of each IP's view, and the send counters.

-- One row per IP of the registry's lifecycle (the provisioner's events on `ip.provisioned`):
-- warmup's copy of the registry's fields, and the warm-up state.
CREATE TABLE warmup_ips (
    ip_id           text        PRIMARY KEY,
    account_id      text        NOT NULL,
    -- As `send.recorded` names it: Python's normal form of the address (str(ip_address)).
    address         text        NOT NULL,
    provisioned_at  timestamptz NOT NULL,          -- event time
    -- The registry's fields, as its latest lifecycle event carried them.
    region          text        NOT NULL,
    pool            text,
    rdns            text,
    registry_status text        NOT NULL,          -- provisioning | cooldown | released
    -- WarmupState (services/warmup/domain/state.py) as JSON; `status` and `closed_until`
    -- repeat two of its fields so that the close-days sweep can find due IPs by index.
    state          jsonb       NOT NULL,
    status         text        NOT NULL,          -- not_started | warming | suspended | active
    closed_until   timestamptz,
    -- Set by ip.cooldown_started / ip.released: sends are still counted, nothing is decided.
    stopped_at     timestamptz,
    stopped_by     text,
    -- The send.recorded partition its sends are read from (the key is the address): its
    -- hours and days are judged on that partition's event-time clock alone. NULL until its
    -- first send is read; such an IP is judged on the slowest partition's clock.
    send_partition integer
);
-- A send names an address: the IP that holds it is the one provisioned last.
CREATE INDEX warmup_ips_by_address ON warmup_ips (address, provisioned_at DESC);
CREATE INDEX warmup_ips_due ON warmup_ips (closed_until)
    WHERE stopped_at IS NULL AND status IN ('warming', 'suspended', 'active');

-- The warm-up part of each IP's view (rendered with every change of its state), joined to
-- the registry's fields when an `ip.state_changed` is emitted or `ipfleet ip show` reads it.
CREATE TABLE ip_warmup_views (
    ip_id            text        PRIMARY KEY,
    status           text        NOT NULL,  -- not_started | warming | suspended | completed | skipped | stopped
    warmup           jsonb       NOT NULL,  -- the contract's `warmup` object
    reputation_score integer     NOT NULL DEFAULT 50 CHECK (reputation_score BETWEEN 0 AND 100),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Sends per IP, UTC day and UTC hour, one column per outcome. Only ever incremented, by a
-- set-based upsert per batch of already-deduplicated events.
CREATE TABLE warmup_counters (
    ip_id      text     NOT NULL,
    day        date     NOT NULL,
    hour       smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    delivered  bigint   NOT NULL DEFAULT 0,
    deferred   bigint   NOT NULL DEFAULT 0,
    bounced    bigint   NOT NULL DEFAULT 0,
    complained bigint   NOT NULL DEFAULT 0,
    dropped    bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (ip_id, day, hour)
);

-- The same counts per UTC day, written by the same statement: the reputation score reads
-- 30 days of them per IP, which would be 720 hourly rows.
CREATE TABLE warmup_daily_counts (
    ip_id      text   NOT NULL,
    day        date   NOT NULL,
    delivered  bigint NOT NULL DEFAULT 0,
    deferred   bigint NOT NULL DEFAULT 0,
    bounced    bigint NOT NULL DEFAULT 0,
    complained bigint NOT NULL DEFAULT 0,
    dropped    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (ip_id, day)
);

-- Sends naming an address no IP of ours holds: counted (all outcomes) and reported.
CREATE TABLE unknown_ip_sends (
    address    text        NOT NULL,
    day        date        NOT NULL,
    n          bigint      NOT NULL,
    first_seen timestamptz NOT NULL,  -- event time
    last_seen  timestamptz NOT NULL,  -- event time
    PRIMARY KEY (address, day)
);

-- Warmup's own copy of the accounts' named pools, from `pool.state_changed` (each event
-- carries the pool's whole state): the overflow of a limit event is judged on it. Never
-- read from the reputation service's tables.
CREATE TABLE warmup_pools (
    account_id text        NOT NULL,
    name       text        NOT NULL,
    is_default boolean     NOT NULL DEFAULT false,
    ip_ids     text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,  -- event time of pool.created: own pools in this order
    PRIMARY KEY (account_id, name)
);
