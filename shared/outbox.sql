-- name: append
INSERT INTO outbox (relay, topic, key, value, headers)
SELECT $1, topic, key, value, headers
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::jsonb[]) AS t(topic, key, value, headers);

-- name: next_batch
-- Only rows of transactions older than every running one: none can still appear before them.
SELECT position, topic, key, value, headers
FROM outbox
WHERE relay = $1 AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY txid, position
LIMIT $2;

-- name: forget
DELETE FROM outbox WHERE position = ANY($1::bigint[]);

-- name: try_lead
SELECT pg_try_advisory_lock(hashtext('ipfleet.outbox.' || $1));
