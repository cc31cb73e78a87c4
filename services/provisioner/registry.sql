-- name: lock_account
-- Serialises quota checks of one account across replicas and rebalances.
SELECT pg_advisory_xact_lock(hashtext('ipfleet.account.' || $1));

-- name: by_request
SELECT ip_id FROM ips WHERE requested_by = $1;

-- name: count_live
SELECT count(*) FROM ips WHERE account_id = $1 AND status <> 'released';

-- name: take_address
-- SKIP LOCKED: concurrent allocations take different free rows instead of waiting; the
-- UNIQUE(ip_id) and the row lock make handing one address to two IPs impossible.
UPDATE inventory SET ip_id = $2
WHERE address = (
    SELECT address FROM inventory
    WHERE region = $1 AND ip_id IS NULL
    ORDER BY address
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING host(address) AS address;

-- name: insert_ip
INSERT INTO ips (ip_id, account_id, address, region, status, pool, rdns, auto_warmup,
                 warmup_schedule, requested_by, provisioned_at)
VALUES ($1, $2, $3::inet, $4, 'provisioning', $5, $6, $7, $8, $9, $10);

-- name: lock_ip
SELECT ip_id, account_id, host(address) AS address, region, status, pool, rdns,
       cooldown_until, release_cause
FROM ips WHERE ip_id = $1
FOR UPDATE;

-- name: start_cooldown
UPDATE ips SET status = 'cooldown', cooldown_until = $2, release_cause = $3,
               cooldown_partition = $4
WHERE ip_id = $1;

-- name: update_ip
UPDATE ips SET pool = COALESCE($2, pool), rdns = COALESCE($3, rdns) WHERE ip_id = $1;

-- name: due_releases
-- Cooldowns over on the clock of the partition their release was read from ($1 partitions,
-- $2 their clocks).
SELECT i.ip_id, i.cooldown_until, i.release_cause FROM ips i
JOIN unnest($1::integer[], $2::timestamptz[]) AS c(partition, watermark)
  ON c.partition = i.cooldown_partition
WHERE i.status = 'cooldown' AND i.cooldown_until <= c.watermark
ORDER BY i.cooldown_until, i.ip_id
LIMIT 500
FOR UPDATE OF i SKIP LOCKED;

-- name: release
UPDATE ips SET status = 'released', released_at = cooldown_until WHERE ip_id = $1;

-- name: free_address
UPDATE inventory SET ip_id = NULL WHERE ip_id = $1;

-- name: add_inventory
INSERT INTO inventory (address, region)
SELECT a, $2 FROM unnest($1::inet[]) AS a
ON CONFLICT (address) DO NOTHING;

-- name: list_inventory
SELECT host(address) AS address, region, ip_id FROM inventory ORDER BY region, address;

-- name: inventory_summary
SELECT region, count(*) AS total, count(*) FILTER (WHERE ip_id IS NULL) AS free
FROM inventory GROUP BY region ORDER BY region;
