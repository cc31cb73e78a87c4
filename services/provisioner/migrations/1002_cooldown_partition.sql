-- The ip.commands partition the release was read from: the cooldown ends on that
-- partition's event-time clock, never on another partition's.
ALTER TABLE ips ADD COLUMN cooldown_partition integer;
