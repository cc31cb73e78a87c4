-- name: advance
-- The latest event time read on each partition of a batch; a clock only moves forward.
-- Returns each of those partitions' clock after the batch.
INSERT INTO partition_clock AS c (consumer, partition, watermark)
SELECT $1, partition, watermark
FROM unnest($2::integer[], $3::timestamptz[]) AS t(partition, watermark)
ORDER BY partition
ON CONFLICT (consumer, partition)
DO UPDATE SET watermark = GREATEST(c.watermark, EXCLUDED.watermark)
RETURNING partition, watermark;

-- name: know_partitions
-- Every partition of the topic gets a row, so that a partition nothing was read on yet
-- holds the slowest clock back (NULL) instead of being left out of it.
INSERT INTO partition_clock AS c (consumer, partition, watermark, partitions)
SELECT $1, p, NULL, $2 FROM generate_series(0, $2::integer - 1) AS p
ON CONFLICT (consumer, partition) DO UPDATE SET partitions = EXCLUDED.partitions
WHERE c.partitions IS DISTINCT FROM EXCLUDED.partitions;

-- name: of_service
-- Every partition clock of one service's subscriptions.
SELECT consumer, partition, watermark, partitions FROM partition_clock
WHERE consumer LIKE $1 || '/%'
ORDER BY consumer, partition;

-- name: of_consumer
SELECT consumer, partition, watermark, partitions FROM partition_clock
WHERE consumer = $1
ORDER BY partition;
