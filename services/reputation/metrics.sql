-- The reputation service's gauges, read on scrape by shared/metrics.py: each statement is the
-- gauge ipfleet_<name>; text columns are labels, `value` the value. Keep labels bounded: the
-- stored reason is a sentence with rates in it, so it is mapped to a class here.

-- name: domain_moves
-- Domain moves between pools so far (records that changed the pool), by reason class
-- (health_check, enrolled, unenrolled, override_set, override_cleared) and who initiated them.
SELECT CASE reason
           WHEN 'Domain enrolled' THEN 'enrolled'
           WHEN 'Domain unenrolled' THEN 'unenrolled'
           WHEN 'Override set' THEN 'override_set'
           WHEN 'Override cleared' THEN 'override_cleared'
           ELSE 'health_check'
       END AS reason,
       initiated_by,
       count(*) AS value
FROM domain_history
WHERE changes_pool
GROUP BY 1, 2
