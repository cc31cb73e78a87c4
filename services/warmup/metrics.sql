-- The warmup service's gauges, read on scrape by shared/metrics.py: each statement is the
-- gauge ipfleet_<name>; text columns are labels, `value` the value. Keep labels bounded.

-- name: warmup_ips
-- Warm-up IPs by status (not_started, warming, suspended, active; stopped once the
-- provisioner has put the IP in cooldown or released it).
SELECT CASE WHEN stopped_at IS NULL THEN status ELSE 'stopped' END AS status,
       count(*) AS value
FROM warmup_ips
GROUP BY 1
