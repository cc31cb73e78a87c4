-- name: claim
-- Record the ids of a batch as applied; returns only the ids not seen before.
INSERT INTO inbox (consumer, event_id)
SELECT $1, id FROM unnest($2::text[]) AS id
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: claim_daily
INSERT INTO inbox_daily (consumer, event_day, event_id)
SELECT $1, day, id FROM unnest($2::date[], $3::text[]) AS t(day, id)
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: daily_partitions
SELECT child.relname AS name
FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'inbox_daily';

-- name: advance_clock
INSERT INTO service_clock (service, watermark) VALUES ($1, $2)
ON CONFLICT (service) DO UPDATE SET watermark = GREATEST(service_clock.watermark, EXCLUDED.watermark);

-- name: read_clock
SELECT watermark FROM service_clock WHERE service = $1;
