-- name: lock_account
-- Serialises changes to one account's pools across the consumers that make them (commands,
-- ip.provisioned, ip.state_changed), replicas and rebalances.
SELECT pg_advisory_xact_lock(hashtext('ipfleet.reputation.account.' || $1));

-- name: account_pools
SELECT p.name, p.is_default,
       coalesce(array_agg(pi.ip_id ORDER BY pi.seq) FILTER (WHERE pi.ip_id IS NOT NULL),
                '{}'::text[]) AS ip_ids
FROM pools p
LEFT JOIN pool_ips pi ON pi.account_id = p.account_id AND pi.pool = p.name
WHERE p.account_id = $1
GROUP BY p.name, p.is_default, p.seq
ORDER BY p.seq;

-- name: demote_default
UPDATE pools SET is_default = false WHERE account_id = $1 AND is_default;

-- name: insert_pool
INSERT INTO pools (account_id, name, is_default, created_at) VALUES ($1, $2, $3, $4);

-- name: rename_pool
-- pool_ips follow through ON UPDATE CASCADE.
UPDATE pools SET name = $3 WHERE account_id = $1 AND name = $2;

-- name: delete_pool
DELETE FROM pools WHERE account_id = $1 AND name = $2;

-- name: add_pool_ip
INSERT INTO pool_ips (account_id, pool, ip_id, added_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING;

-- name: remove_pool_ip
DELETE FROM pool_ips WHERE account_id = $1 AND pool = $2 AND ip_id = $3;

-- name: release_from_pools
DELETE FROM pool_ips WHERE account_id = $1 AND ip_id = $2;

-- name: ip_statuses
-- The account's IPs among $2 with their status, as this service learnt them from events.
SELECT ip_id, status FROM ips WHERE account_id = $1 AND ip_id = ANY($2::text[]);

-- name: ip_provisioned
-- A new IP; one already known (its ip.state_changed read first: another topic) keeps the
-- status it has.
INSERT INTO ips (ip_id, account_id, address, status, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (ip_id) DO NOTHING;

-- name: ip_state_changed
INSERT INTO ips (ip_id, account_id, address, status, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (ip_id) DO UPDATE
SET account_id = EXCLUDED.account_id, address = EXCLUDED.address, status = EXCLUDED.status,
    updated_at = EXCLUDED.updated_at;

-- name: dynamic_config
SELECT enabled, thresholds FROM dynamic_pool_config WHERE account_id = $1;

-- name: dynamic_ips
SELECT pool, ip_id FROM dynamic_pool_ips WHERE account_id = $1 ORDER BY pool, position;

-- name: save_dynamic_config
INSERT INTO dynamic_pool_config (account_id, enabled, thresholds, configured_at, configured_by)
VALUES ($1, $2, $3::jsonb, $4, $5)
ON CONFLICT (account_id) DO UPDATE
SET enabled = EXCLUDED.enabled, thresholds = EXCLUDED.thresholds,
    configured_at = EXCLUDED.configured_at, configured_by = EXCLUDED.configured_by;

-- name: clear_dynamic_ips
DELETE FROM dynamic_pool_ips WHERE account_id = $1;

-- name: insert_dynamic_ips
INSERT INTO dynamic_pool_ips (account_id, pool, ip_id, position)
SELECT $1, pool, ip_id, position
FROM unnest($2::text[], $3::text[], $4::integer[]) AS t (pool, ip_id, position);

-- name: release_from_dynamic_pools
DELETE FROM dynamic_pool_ips WHERE account_id = $1 AND ip_id = $2;

-- name: list_pools
-- For `ipfleet pool list`: named pools, then dynamic pools, each with its IPs' addresses and
-- statuses.
SELECT p.account_id, p.name, p.is_default, NULL::boolean AS enabled, p.seq AS position,
       coalesce(array_agg(pi.ip_id ORDER BY pi.seq) FILTER (WHERE pi.ip_id IS NOT NULL),
                '{}'::text[]) AS ip_ids
FROM pools p
LEFT JOIN pool_ips pi ON pi.account_id = p.account_id AND pi.pool = p.name
WHERE $1::text IS NULL OR p.account_id = $1
GROUP BY p.account_id, p.name, p.is_default, p.seq
UNION ALL
SELECT c.account_id, d.pool AS name, false, c.enabled,
       CASE d.pool WHEN 'dynamic_good' THEN 0 WHEN 'dynamic_poor' THEN 1 ELSE 2 END,
       coalesce(array_agg(x.ip_id ORDER BY x.position) FILTER (WHERE x.ip_id IS NOT NULL),
                '{}'::text[])
FROM dynamic_pool_config c
CROSS JOIN (VALUES ('dynamic_good'), ('dynamic_poor'), ('dynamic_new')) AS d (pool)
LEFT JOIN dynamic_pool_ips x ON x.account_id = c.account_id AND x.pool = d.pool
WHERE $1::text IS NULL OR c.account_id = $1
GROUP BY c.account_id, d.pool, c.enabled
ORDER BY 1, 4 NULLS FIRST, 5;

-- name: ip_addresses
SELECT ip_id, address, status FROM ips WHERE ip_id = ANY($1::text[]);
