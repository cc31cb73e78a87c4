-- name: claim
-- Record the ids of a batch as applied; returns only the ids not seen before.
INSERT INTO inbox (consumer, event_id)
SELECT $1, id FROM unnest($2::text[]) AS id
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: claim_daily
-- Record a batch's event keys (`daily_inbox.event_key`; in-batch duplicates already removed)
-- as applied. $1 and $2 are JSON arrays of days and keys, position by position; returns the
-- positions (1-based) of the keys seen before, usually none. Arrays and a row per id cost the
-- worker more per id than the insert costs Postgres.
WITH batch AS (
    SELECT d.day::date AS day, k.key::uuid AS key, n
    FROM json_array_elements_text($2::json) WITH ORDINALITY AS k(key, n)
    JOIN json_array_elements_text($1::json) WITH ORDINALITY AS d(day, n) USING (n)
), claimed AS (
    INSERT INTO inbox_days (event_day, event_key)
    SELECT day, key FROM batch
    ON CONFLICT DO NOTHING
    RETURNING event_key
)
-- A key is in the batch once, so the key alone tells a claimed row from one seen before.
SELECT coalesce(array_agg(n), '{}') FROM batch
WHERE key NOT IN (SELECT event_key FROM claimed);

-- name: daily_partitions
SELECT child.relname AS name
FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'inbox_days' AND parent.relnamespace = current_schema()::regnamespace;
