-- name: one
SELECT i.ip_id, i.account_id, host(i.address) AS address, i.region, i.status AS registry_status,
       i.pool, i.rdns, w.status AS warmup_status, w.warmup, w.reputation_score
FROM ips i LEFT JOIN ip_warmup_views w USING (ip_id)
WHERE i.ip_id = $1;

-- name: all
SELECT i.ip_id, i.account_id, host(i.address) AS address, i.region, i.status AS registry_status,
       i.pool, i.rdns, w.status AS warmup_status, w.warmup, w.reputation_score
FROM ips i LEFT JOIN ip_warmup_views w USING (ip_id)
ORDER BY i.account_id, i.address;
