-- name: register
-- An IP warmup has not seen before (its ip.provisioned); an IP it knows keeps its row.
INSERT INTO warmup_ips (ip_id, account_id, address, provisioned_at, state, status, closed_until,
                        region, pool, rdns, registry_status)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11)
ON CONFLICT (ip_id) DO NOTHING;

-- name: registry_changed
-- The registry's fields as its latest lifecycle event carries them (ip.updated,
-- ip.cooldown_started, ip.released); the warm-up state is left as it is.
UPDATE warmup_ips
SET account_id = $2, address = $3, region = $4, pool = $5, rdns = $6, registry_status = $7
WHERE ip_id = $1;

-- name: lock_ip
SELECT ip_id, account_id, address, state, stopped_at, stopped_by, send_partition, quiet_until,
       (SELECT counted_on FROM ip_warmup_views v WHERE v.ip_id = w.ip_id) AS counted_on
FROM warmup_ips w WHERE ip_id = $1
FOR UPDATE OF w;

-- name: lock_by_address
-- The IPs a batch of sends names: per address, the IP provisioned last. Locked in ip_id
-- order, so two batches (or a batch and a command) can never deadlock on them; the
-- close-days sweep skips what is locked.
SELECT ip_id, account_id, address, state, stopped_at, stopped_by, send_partition, quiet_until,
       (SELECT counted_on FROM ip_warmup_views v WHERE v.ip_id = w.ip_id) AS counted_on
FROM warmup_ips w
WHERE ip_id IN (
    SELECT DISTINCT ON (address) ip_id
    FROM warmup_ips
    WHERE address = ANY($1::text[])
    ORDER BY address, provisioned_at DESC, ip_id
)
ORDER BY ip_id
FOR UPDATE OF w;

-- name: count_sends
-- One set-based upsert per batch: the hourly counters and their daily totals, += . Returns
-- the sends (dropped excluded) each touched day (hour NULL) and hour holds afterwards, so
-- the batch can tell which IPs a limit could be reached on.
WITH increment AS (
    SELECT *
    FROM unnest($1::text[], $2::date[], $3::smallint[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::bigint[], $8::bigint[])
         AS t(ip_id, day, hour, delivered, deferred, bounced, complained, dropped)
),
daily AS (
    INSERT INTO warmup_daily_counts AS d
        (ip_id, day, delivered, deferred, bounced, complained, dropped)
    SELECT ip_id, day, sum(delivered), sum(deferred), sum(bounced), sum(complained), sum(dropped)
    FROM increment
    GROUP BY ip_id, day
    ORDER BY ip_id, day
    ON CONFLICT (ip_id, day) DO UPDATE SET
        delivered  = d.delivered  + EXCLUDED.delivered,
        deferred   = d.deferred   + EXCLUDED.deferred,
        bounced    = d.bounced    + EXCLUDED.bounced,
        complained = d.complained + EXCLUDED.complained,
        dropped    = d.dropped    + EXCLUDED.dropped
    RETURNING d.ip_id, d.day, d.delivered + d.deferred + d.bounced + d.complained AS sent
),
hourly AS (
    INSERT INTO warmup_counters AS c
        (ip_id, day, hour, delivered, deferred, bounced, complained, dropped)
    SELECT ip_id, day, hour, delivered, deferred, bounced, complained, dropped
    FROM increment
    ORDER BY ip_id, day, hour
    ON CONFLICT (ip_id, day, hour) DO UPDATE SET
        delivered  = c.delivered  + EXCLUDED.delivered,
        deferred   = c.deferred   + EXCLUDED.deferred,
        bounced    = c.bounced    + EXCLUDED.bounced,
        complained = c.complained + EXCLUDED.complained,
        dropped    = c.dropped    + EXCLUDED.dropped
    RETURNING c.ip_id, c.day, c.hour, c.delivered + c.deferred + c.bounced + c.complained AS sent
)
SELECT ip_id, day, NULL::smallint AS hour, sent FROM daily
UNION ALL
SELECT ip_id, day, hour, sent FROM hourly;

-- name: count_unknown
INSERT INTO unknown_ip_sends AS u (address, day, n, first_seen, last_seen)
SELECT address, day, n, first_seen, last_seen
FROM unnest($1::text[], $2::date[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
     AS t(address, day, n, first_seen, last_seen)
ORDER BY address, day
ON CONFLICT (address, day) DO UPDATE SET
    n = u.n + EXCLUDED.n,
    first_seen = LEAST(u.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen);

-- name: unknown_sends
-- What `ipfleet ip unknown` reports: sends on addresses no IP of ours held, per UTC day,
-- over the $1 latest days (event time: counted back from the newest day recorded),
-- newest day first.
SELECT address, day, n, first_seen, last_seen
FROM unknown_ip_sends
WHERE day > (SELECT max(day) FROM unknown_ip_sends) - $1::int
ORDER BY day DESC, n DESC, address;

-- name: counters_since
-- Each IP's hourly counters from its own first day on (the rules need the IP's current
-- UTC day onward). Read by position (catch_up.counters_by_ip): keep this column order (the
-- outcomes in OUTCOMES' order).
SELECT c.ip_id, c.day, c.hour, c.delivered, c.deferred, c.bounced, c.complained, c.dropped
FROM unnest($1::text[], $2::date[]) AS s(ip_id, since)
JOIN warmup_counters c ON c.ip_id = s.ip_id AND c.day >= s.since;

-- name: window_totals
-- Outcome totals per IP over the UTC days $2..$3 (the reputation score's window).
SELECT ip_id, sum(delivered) AS delivered, sum(deferred) AS deferred, sum(bounced) AS bounced,
       sum(complained) AS complained, sum(dropped) AS dropped
FROM warmup_daily_counts
WHERE ip_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
GROUP BY ip_id;

-- name: save_states
-- A state written is up to date as of its watermark: no longer left quiet.
UPDATE warmup_ips AS w
SET state = s.state::jsonb, status = s.status, closed_until = s.closed_until, quiet_until = NULL
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
     AS s(ip_id, state, status, closed_until)
WHERE w.ip_id = s.ip_id;

-- name: save_views
-- The warm-up part of each IP's view, without the running counts (read back by `views`).
INSERT INTO ip_warmup_views AS v (ip_id, status, warmup, reputation_score, counted_on,
                                  score_since, updated_at)
SELECT ip_id, status, warmup::jsonb, NULL, counted_on, score_since, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[])
     AS t(ip_id, status, warmup, counted_on, score_since)
ORDER BY ip_id
ON CONFLICT (ip_id) DO UPDATE SET
    status = EXCLUDED.status,
    warmup = EXCLUDED.warmup,
    reputation_score = EXCLUDED.reputation_score,
    counted_on = EXCLUDED.counted_on,
    score_since = EXCLUDED.score_since,
    updated_at = now();

-- name: views
-- The whole view of each IP (the registry's fields warmup keeps, and its warm-up part), for
-- many IPs at once, with the running counts the stored part leaves out: the sends of its
-- day and the outcomes of its score window, as counted now.
SELECT i.ip_id, i.account_id, i.address, i.region, i.registry_status, i.pool, i.rdns,
       w.status AS warmup_status, w.warmup, w.reputation_score, w.counted_on,
       s.sent_on, s.delivered, s.deferred, s.bounced, s.complained, s.dropped
FROM warmup_ips i
LEFT JOIN ip_warmup_views w USING (ip_id)
LEFT JOIN LATERAL (
    SELECT sum(delivered + deferred + bounced + complained)
               FILTER (WHERE day = w.counted_on) AS sent_on,
           sum(delivered) AS delivered, sum(deferred) AS deferred, sum(bounced) AS bounced,
           sum(complained) AS complained, sum(dropped) AS dropped
    FROM warmup_daily_counts d
    WHERE d.ip_id = i.ip_id AND d.day BETWEEN w.score_since AND w.counted_on
) s ON true
WHERE i.ip_id = ANY($1::text[]);

-- name: all_views
-- What `ipfleet ip list` shows: every IP's whole view (as `views`).
SELECT i.ip_id, i.account_id, i.address, i.region, i.registry_status, i.pool, i.rdns,
       w.status AS warmup_status, w.warmup, w.reputation_score, w.counted_on,
       s.sent_on, s.delivered, s.deferred, s.bounced, s.complained, s.dropped
FROM warmup_ips i
LEFT JOIN ip_warmup_views w USING (ip_id)
LEFT JOIN LATERAL (
    SELECT sum(delivered + deferred + bounced + complained)
               FILTER (WHERE day = w.counted_on) AS sent_on,
           sum(delivered) AS delivered, sum(deferred) AS deferred, sum(bounced) AS bounced,
           sum(complained) AS complained, sum(dropped) AS dropped
    FROM warmup_daily_counts d
    WHERE d.ip_id = i.ip_id AND d.day BETWEEN w.score_since AND w.counted_on
) s ON true
ORDER BY i.account_id, i.address;

-- name: registry_rows
-- The registry's fields warmup keeps, to render events from (each event renders its own
-- warm-up part and score).
SELECT ip_id, account_id, address, region, registry_status, pool, rdns,
       NULL::text AS warmup_status, NULL::jsonb AS warmup, NULL::integer AS reputation_score
FROM warmup_ips
WHERE ip_id = ANY($1::text[]);

-- name: due
-- IPs with an hour to close, oldest first: before the hour its own partition's clock allows
-- ($1 partitions, $2 their hours), or, for an IP none of whose sends was read yet, before
-- $3 (the slowest partition's; NULL: none); an IP a batch left quiet, only once that hour
-- reaches its `quiet_until`. Those a batch holds are left for the next run
-- (they are being brought up to date anyway). An IP whose schedule is no longer loaded ($4
-- lists those that are) cannot be judged and must not block the others.
SELECT w.ip_id, w.account_id, w.address, w.state, w.stopped_at, w.stopped_by, w.send_partition,
       w.quiet_until,
       (SELECT counted_on FROM ip_warmup_views v WHERE v.ip_id = w.ip_id) AS counted_on
FROM warmup_ips w
LEFT JOIN unnest($1::integer[], $2::timestamptz[]) AS h(partition, before)
       ON h.partition = w.send_partition
WHERE w.stopped_at IS NULL AND w.status IN ('warming', 'suspended', 'active')
  AND w.closed_until < CASE WHEN w.send_partition IS NULL THEN $3 ELSE h.before END
  AND (w.quiet_until IS NULL
       OR w.quiet_until <= CASE WHEN w.send_partition IS NULL THEN $3 ELSE h.before END)
  AND w.state->>'schedule' = ANY($4::text[])
ORDER BY w.closed_until, w.ip_id
LIMIT $5
FOR UPDATE OF w SKIP LOCKED;

-- name: save_partitions
-- The partition each IP's sends were read from (changes only if the topic is repartitioned).
UPDATE warmup_ips AS w SET send_partition = t.partition
FROM unnest($1::text[], $2::integer[]) AS t(ip_id, partition)
WHERE w.ip_id = t.ip_id;

-- name: daily_totals
-- Outcome totals per IP and UTC day over the days $2..$3 (the score windows of events).
SELECT ip_id, day, delivered, deferred, bounced, complained, dropped
FROM warmup_daily_counts
WHERE ip_id = ANY($1::text[]) AND day BETWEEN $2 AND $3;

-- name: stop
UPDATE warmup_ips
SET stopped_at = COALESCE(stopped_at, $2), stopped_by = $3
WHERE ip_id = $1;

-- name: pool_upsert
-- A named pool's whole state, as a pool.state_changed event carries it ($5: its event time,
-- kept as the creation time of a pool not known yet).
INSERT INTO warmup_pools AS p (account_id, name, is_default, ip_ids, created_at)
VALUES ($1, $2, $3, $4::text[], $5)
ON CONFLICT (account_id, name) DO UPDATE SET is_default = EXCLUDED.is_default,
                                             ip_ids = EXCLUDED.ip_ids;

-- name: pool_demote_others
-- An account has at most one default pool: a new default demotes the old one (the
-- reputation service announces only the new one).
UPDATE warmup_pools SET is_default = false
WHERE account_id = $1 AND name <> $2 AND is_default;

-- name: pool_rename
-- The pool $2 is now named $3 (same IPs, same creation time), with its whole state.
WITH old AS (
    DELETE FROM warmup_pools WHERE account_id = $1 AND name = $2 RETURNING created_at
)
INSERT INTO warmup_pools AS p (account_id, name, is_default, ip_ids, created_at)
VALUES ($1, $3, $4, $5::text[], COALESCE((SELECT created_at FROM old), $6))
ON CONFLICT (account_id, name) DO UPDATE SET is_default = EXCLUDED.is_default,
                                             ip_ids = EXCLUDED.ip_ids;

-- name: pool_delete
DELETE FROM warmup_pools WHERE account_id = $1 AND name = $2;

-- name: account_pools
-- The named pools of some accounts, each account's in creation order.
SELECT account_id, name, is_default, ip_ids
FROM warmup_pools
WHERE account_id = ANY($1::text[])
ORDER BY account_id, created_at, name;

-- name: active_ips
-- The IPs of some accounts that send at full volume now: warm-up `active` (completed,
-- skipped or stopped) and not in cooldown or released.
SELECT account_id, ip_id
FROM warmup_ips
WHERE account_id = ANY($1::text[]) AND status = 'active' AND stopped_at IS NULL;

-- name: note_crossings
-- The first crossing noted for a threshold, window and judged hour stays (a complaint-spike
-- check that held, stopped holding and held again keeps its first crossing).
INSERT INTO threshold_crossings
    (ip_id, threshold, window_start, reached, first_hour, last_hour, event_id)
SELECT *
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::integer[], $5::timestamptz[],
            $6::timestamptz[], $7::text[])
ON CONFLICT DO NOTHING;

-- name: find_crossings
-- For each (IP, threshold, window start, count, judged hour) sought: the send that crossed it.
SELECT s.n, c.event_id
FROM unnest($1::integer[], $2::text[], $3::text[], $4::timestamptz[], $5::integer[],
            $6::timestamptz[]) AS s(n, ip_id, threshold, window_start, reached, hour)
JOIN threshold_crossings c
  ON c.ip_id = s.ip_id AND c.threshold = s.threshold AND c.window_start = s.window_start
 AND c.reached = s.reached AND c.first_hour <= s.hour AND s.hour <= c.last_hour;

-- name: forget_crossings
-- Crossings of windows that began before $1: no IP judges those days any more.
DELETE FROM threshold_crossings WHERE window_start < $1;

-- name: sent_after_hour
-- Each IP's sends (dropped excluded) on one UTC day after one hour of it: what was read ahead
-- of the hour its clock judges.
SELECT s.ip_id, sum(c.delivered + c.deferred + c.bounced + c.complained)::bigint AS sent
FROM unnest($1::text[], $2::date[], $3::smallint[]) AS s(ip_id, day, hour)
JOIN warmup_counters c ON c.ip_id = s.ip_id AND c.day = s.day AND c.hour > s.hour
GROUP BY s.ip_id;

-- name: hour_peaks
-- Each IP's largest hourly count (dropped excluded) over some hours of one UTC day: the
-- hours from its watermark's to the day's last, which a batch that leaves it as it stands
-- must know cannot reach the hourly limit.
SELECT s.ip_id, max(c.delivered + c.deferred + c.bounced + c.complained)::bigint AS peak
FROM unnest($1::text[], $2::date[], $3::smallint[], $4::smallint[])
     AS s(ip_id, day, first_hour, last_hour)
JOIN warmup_counters c
  ON c.ip_id = s.ip_id AND c.day = s.day AND c.hour BETWEEN s.first_hour AND s.last_hour
GROUP BY s.ip_id;

-- name: leave_quiet
-- The IPs a batch leaves as they stand, each with the hour before which it has nothing to
-- decide (`quiet_until`); rows that already say so are not rewritten.
UPDATE warmup_ips AS w
SET quiet_until = q.quiet_until
FROM unnest($1::text[], $2::timestamptz[]) AS q(ip_id, quiet_until)
WHERE w.ip_id = q.ip_id AND w.quiet_until IS DISTINCT FROM q.quiet_until;
