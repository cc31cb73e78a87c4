-- name: claim
-- Claim DLQ messages for a redrive; returns the offsets not claimed before (by any run).
INSERT INTO dead_letter_redrives (dlq_topic, partition, "offset")
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
ON CONFLICT DO NOTHING
RETURNING partition, "offset";

-- name: confirm
UPDATE dead_letter_redrives SET confirmed_at = now()
WHERE dlq_topic = $1 AND (partition, "offset") IN (
    SELECT p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
);

-- name: claimed
SELECT partition, "offset" FROM dead_letter_redrives
WHERE dlq_topic = $1 AND (partition, "offset") IN (
    SELECT p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
);

-- name: unconfirmed
-- Claims of an interrupted run: sent or not, nobody knows.
SELECT partition, "offset" FROM dead_letter_redrives
WHERE dlq_topic = $1 AND confirmed_at IS NULL;

-- name: release
-- Given back for a new attempt (--retry-unconfirmed).
DELETE FROM dead_letter_redrives
WHERE dlq_topic = $1 AND confirmed_at IS NULL AND (partition, "offset") IN (
    SELECT p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o)
);

-- name: forget_inbox
-- A dead letter the handler refused had its id recorded in the consumer's inbox with the
-- refusal; forget it, or the redriven message would be skipped as a duplicate.
DELETE FROM inbox WHERE consumer = $1 AND event_id = $2;

-- name: forget_inbox_daily
-- $2 is the event's key in the daily inbox (`daily_inbox.event_key`).
DELETE FROM inbox_days WHERE event_day = $1 AND event_key = $2::uuid;
