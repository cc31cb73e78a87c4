-- name: advance
-- The latest event time read on each partition of a batch; a clock only moves forward.
-- Returns each of those partitions' clock after the batch.
INSERT INTO partition_clock AS c (consumer, partition, watermark)
SELECT $1, partition, watermark
FROM unnest($2::integer[], $3::timestamptz[]) AS t(partition, watermark)
ORDER BY partition
ON CONFLICT (consumer, partition)
DO UPDATE SET watermark = GREATEST(c.watermark, EXCLUDED.watermark), caught_up = false
RETURNING partition, watermark;

-- name: know_partitions
-- Every partition of the topic gets a row, so that a partition nothing was read on yet
-- holds the slowest clock back (NULL) instead of being left out of it.
INSERT INTO partition_clock (consumer, partition, watermark)
SELECT $1, p, NULL FROM generate_series(0, $2::integer - 1) AS p
ON CONFLICT (consumer, partition) DO NOTHING;

-- name: mark_caught_up
-- Whether each of some partitions ($2) has its committed offset at its end ($3), as seen
-- when its clock read $4: a batch that moved the clock since then wins (it clears the mark).
UPDATE partition_clock AS c SET caught_up = t.caught_up
FROM unnest($2::integer[], $3::boolean[], $4::timestamptz[]) AS t(partition, caught_up, seen)
WHERE c.consumer = $1 AND c.partition = t.partition
  AND (NOT t.caught_up OR c.watermark IS NOT DISTINCT FROM t.seen);

-- name: of_service
-- Every partition clock of one service's subscriptions.
SELECT consumer, partition, watermark, caught_up FROM partition_clock
WHERE consumer LIKE $1 || '/%'
ORDER BY consumer, partition;

-- name: of_consumer
SELECT consumer, partition, watermark, caught_up FROM partition_clock
WHERE consumer = $1
ORDER BY partition;
