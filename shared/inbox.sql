-- name: claim
-- Record the ids of a batch as applied; returns only the ids not seen before.
INSERT INTO inbox (consumer, event_id)
SELECT $1, id FROM unnest($2::text[]) AS id
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: claim_daily
-- Record a batch's event keys (`daily_inbox.event_key`; in-batch duplicates already removed)
-- as applied. $1 holds the days and $2 the keys' 16 bytes each, position by position;
-- returns the positions (1-based) of the keys seen before, usually none. Arrays of dates and
-- one bytea cost the worker less per id than text or JSON, and Postgres less to read.
WITH batch AS (
    SELECT b.day,
           encode(substring($2::bytea FROM (b.n::int - 1) * 16 + 1 FOR 16), 'hex')::uuid AS key,
           b.n
    FROM unnest($1::date[]) WITH ORDINALITY AS b(day, n)
), claimed AS (
    INSERT INTO inbox_days (event_day, event_key)
    SELECT day, key FROM batch
    ON CONFLICT DO NOTHING
    RETURNING event_key
)
-- A key is in the batch once, so the key alone tells a claimed row from one seen before;
-- which ones is asked only when some were.
SELECT CASE
    WHEN (SELECT count(*) FROM claimed) = (SELECT count(*) FROM batch) THEN '{}'::bigint[]
    ELSE (SELECT coalesce(array_agg(n), '{}') FROM batch
          WHERE key NOT IN (SELECT event_key FROM claimed))
END;

-- name: daily_partitions
SELECT child.relname AS name
FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'inbox_days' AND parent.relnamespace = current_schema()::regnamespace;
