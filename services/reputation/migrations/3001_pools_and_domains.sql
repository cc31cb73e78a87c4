-- The reputation service: named pools, each account's dynamic pools, sending domains' places
-- in them, their history of moves, and every health check. All times are event times.

-- The dedicated IPs as reputation knows them, from events only: `ip.provisioned` (the
-- provisioner's) adds one, every `ip.state_changed` (warmup's, with the IP's whole view)
-- keeps its status. Pool commands judge IPs by this copy.
CREATE TABLE ips (
    ip_id      text        PRIMARY KEY,
    account_id text        NOT NULL,
    address    text        NOT NULL,
    status     text        NOT NULL,  -- as on the wire: provisioning, warming, active, ...
    updated_at timestamptz NOT NULL   -- event time of the latest event applied
);
CREATE INDEX ips_by_account ON ips (account_id, ip_id);

-- Named pools. Names are unique per account (exact match); at most one default per account.
CREATE TABLE pools (
    account_id text        NOT NULL,
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    is_default boolean     NOT NULL DEFAULT false,
    seq        bigserial   NOT NULL,  -- creation order, kept through a rename
    created_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE UNIQUE INDEX pools_one_default ON pools (account_id) WHERE is_default;

-- An IP may sit in several named pools of its account. A rename carries its IPs along.
CREATE TABLE pool_ips (
    account_id text        NOT NULL,
    pool       text        NOT NULL,
    ip_id      text        NOT NULL,
    seq        bigserial   NOT NULL,  -- order added
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, pool, ip_id),
    FOREIGN KEY (account_id, pool) REFERENCES pools (account_id, name)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX pool_ips_by_ip ON pool_ips (account_id, ip_id);

-- Dynamic pools, per account: whether the feature is on and the thresholds in force (the
-- defaults with every override merged in, so the row alone says how domains are judged).
CREATE TABLE dynamic_pool_config (
    account_id    text        PRIMARY KEY,
    enabled       boolean     NOT NULL,
    thresholds    jsonb       NOT NULL,
    configured_at timestamptz NOT NULL,
    configured_by text        NOT NULL  -- the dynamic_pools.configure command id
);

-- The IPs of the three dynamic pools. The primary key is the rule "an IP sits in at most one
-- dynamic pool", kept by the database as well as by the command's checks.
CREATE TABLE dynamic_pool_ips (
    account_id text    NOT NULL,
    pool       text    NOT NULL CHECK (pool IN ('dynamic_good', 'dynamic_poor', 'dynamic_new')),
    ip_id      text    NOT NULL,
    position   integer NOT NULL,
    PRIMARY KEY (account_id, ip_id)
);

-- Sending domains ipfleet knows: enrolled ones, and ones unenrolled since. A domain has one
-- owning account (the one that first enrolled it); events naming it for another account are
-- refused (commands) or dead-lettered (health checks).
CREATE TABLE domain_assignments (
    domain      text        PRIMARY KEY,
    account_id  text        NOT NULL,
    enrolled    boolean     NOT NULL,
    pool        text,                  -- the pool it sends from; NULL: the account's default
    state       jsonb       NOT NULL,  -- assignment.DomainState
    enrolled_at timestamptz,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX domain_assignments_by_account ON domain_assignments (account_id, domain);

-- One record per change of a domain's pool (seed 003's history): moves by health checks
-- (`system`), enrol/unenrol (`operator`), override set/clear (`override`). An override set to
-- the pool the domain is already in is a record too, with changes_pool false.
CREATE TABLE domain_history (
    id              text             PRIMARY KEY,  -- = the id of the domain.pool_changed event
    domain          text             NOT NULL,
    account_id      text             NOT NULL,
    prev_pool       text,
    new_pool        text,
    reason          text             NOT NULL,
    bounce_rate     double precision,
    complaint_rate  double precision,
    processed_count bigint,
    initiated_by    text             NOT NULL CHECK (initiated_by IN ('system', 'override', 'operator')),
    changes_pool    boolean          NOT NULL,
    occurred_at     timestamptz      NOT NULL,  -- the causing event's time
    cause_id        text             NOT NULL,  -- the causing event's id
    seq             bigserial        NOT NULL
);
CREATE INDEX domain_history_by_domain ON domain_history (domain, occurred_at, seq);

-- Every domain.health_checked applied, enrolled domain or not, with what it did.
CREATE TABLE health_checks (
    event_id        text             PRIMARY KEY,
    domain          text             NOT NULL,
    account_id      text             NOT NULL,
    checked_at      timestamptz      NOT NULL,
    bounce_rate     double precision NOT NULL,
    complaint_rate  double precision NOT NULL,
    processed_count bigint           NOT NULL,
    verdict         text             NOT NULL,  -- the pool the metrics alone point to
    metric_bands    jsonb            NOT NULL,  -- per metric: value and band (as domain.evaluated)
    outcome         text             NOT NULL,  -- assignment.Outcome
    pool_before     text,
    pool_after      text,
    reason          text             NOT NULL
);
CREATE INDEX health_checks_by_domain ON health_checks (domain, checked_at);
