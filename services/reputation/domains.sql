-- name: lock_domain
-- Serialises changes to one domain: health checks (keyed by domain) and commands (keyed by
-- account) reach it on different partitions, and a domain that has no row yet has no row
-- to lock.
SELECT pg_advisory_xact_lock(hashtext('ipfleet.reputation.domain.' || $1));

-- name: load_domain
SELECT account_id, state FROM domain_assignments WHERE domain = $1;

-- name: save_domain
INSERT INTO domain_assignments (domain, account_id, enrolled, pool, state, enrolled_at, updated_at)
VALUES ($1, $2, $3, $4, $5::jsonb, CASE WHEN $3 THEN $6::timestamptz END, $6)
ON CONFLICT (domain) DO UPDATE
SET enrolled = EXCLUDED.enrolled,
    pool = EXCLUDED.pool,
    state = EXCLUDED.state,
    -- the time of the enrolment still in force; NULL once unenrolled
    enrolled_at = CASE
        WHEN NOT EXCLUDED.enrolled THEN NULL
        WHEN domain_assignments.enrolled THEN domain_assignments.enrolled_at
        ELSE EXCLUDED.updated_at
    END,
    updated_at = EXCLUDED.updated_at;

-- name: domains_sending_from
-- The account's domains whose own pool (override, or replacement pool after unenrolling) is $2.
SELECT domain, state FROM domain_assignments
WHERE account_id = $1 AND pool = $2
ORDER BY domain;

-- name: update_domain_state
UPDATE domain_assignments SET pool = $2, state = $3::jsonb WHERE domain = $1;

-- name: enrolled_domains
SELECT domain FROM domain_assignments WHERE account_id = $1 AND enrolled ORDER BY domain;

-- name: insert_history
INSERT INTO domain_history (id, domain, account_id, prev_pool, new_pool, reason, bounce_rate,
                            complaint_rate, processed_count, initiated_by, changes_pool,
                            occurred_at, cause_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO NOTHING;

-- name: insert_check
-- Nothing returned: this check was applied before (the inbox was pruned since).
INSERT INTO health_checks (event_id, domain, account_id, checked_at, bounce_rate, complaint_rate,
                           processed_count, verdict, metric_bands, outcome, pool_before,
                           pool_after, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: list_domains
-- For `ipfleet domain list`: every enrolled domain with its last health check.
SELECT d.domain, d.account_id, d.pool, d.state, d.enrolled_at, d.updated_at,
       c.checked_at, c.bounce_rate, c.complaint_rate, c.processed_count
FROM domain_assignments d
LEFT JOIN LATERAL (
    SELECT checked_at, bounce_rate, complaint_rate, processed_count
    FROM health_checks h WHERE h.domain = d.domain
    ORDER BY checked_at DESC, event_id DESC LIMIT 1
) c ON true
WHERE d.enrolled AND ($1::text IS NULL OR d.account_id = $1)
ORDER BY d.account_id, d.domain;

-- name: checked_not_enrolled
-- Domains with health checks that are not enrolled: their checks are kept and visible.
SELECT h.domain, h.account_id, count(*) AS checks, max(h.checked_at) AS last_checked_at
FROM health_checks h
LEFT JOIN domain_assignments d ON d.domain = h.domain AND d.enrolled
WHERE d.domain IS NULL AND ($1::text IS NULL OR h.account_id = $1)
GROUP BY h.domain, h.account_id
ORDER BY h.account_id, h.domain;

-- name: history
-- Moves of one domain, in a time window (both ends inclusive, NULL: open), to or from $4.
SELECT id, domain, account_id, prev_pool, new_pool, reason, bounce_rate, complaint_rate,
       processed_count, initiated_by, changes_pool, occurred_at
FROM domain_history
WHERE domain = $1
  AND ($2::timestamptz IS NULL OR occurred_at >= $2)
  AND ($3::timestamptz IS NULL OR occurred_at <= $3)
  AND ($4::text IS NULL OR prev_pool = $4 OR new_pool = $4)
ORDER BY occurred_at, seq;

-- name: checks
-- Health checks of one domain, with the same filters (the pool before or after the check).
SELECT event_id, account_id, checked_at, bounce_rate, complaint_rate, processed_count, verdict,
       outcome, pool_before, pool_after, reason
FROM health_checks
WHERE domain = $1
  AND ($2::timestamptz IS NULL OR checked_at >= $2)
  AND ($3::timestamptz IS NULL OR checked_at <= $3)
  AND ($4::text IS NULL OR pool_before = $4 OR pool_after = $4)
ORDER BY checked_at, event_id;
