-- The partition an IP's sends are read from (`send.recorded` is keyed by address): the IP's
-- hours and days are judged on that partition's event-time clock alone. NULL until its
-- first send is read; such an IP is judged on the slowest partition's clock.
ALTER TABLE warmup_ips ADD COLUMN send_partition integer;
