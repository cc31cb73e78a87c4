-- name: claim
-- Record the ids of a batch as applied; returns only the ids not seen before.
INSERT INTO inbox (consumer, event_id)
SELECT $1, id FROM unnest($2::text[]) AS id
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: claim_daily
-- Record a batch's ids (in-batch duplicates already removed) as applied. $2 and $3 are JSON
-- arrays of days and ids, position by position; returns the positions (1-based) of the ids
-- seen before, usually none. Arrays and a row per id cost the worker more per id than the
-- insert costs Postgres.
WITH batch AS (
    SELECT d.day::date AS day, i.id, n
    FROM json_array_elements_text($3::json) WITH ORDINALITY AS i(id, n)
    JOIN json_array_elements_text($2::json) WITH ORDINALITY AS d(day, n) USING (n)
), claimed AS (
    INSERT INTO inbox_daily (consumer, event_day, event_id)
    SELECT $1, day, id FROM batch
    ON CONFLICT DO NOTHING
    RETURNING event_day, event_id
)
SELECT coalesce(array_agg(n), '{}') FROM batch
WHERE NOT EXISTS (
    SELECT 1 FROM claimed WHERE claimed.event_day = batch.day AND claimed.event_id = batch.id
);

-- name: daily_partitions
SELECT child.relname AS name
FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'inbox_daily' AND parent.relnamespace = current_schema()::regnamespace;
