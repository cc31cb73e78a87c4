-- An IP a send batch leaves as it stands (nothing its hours to close could decide, see
-- services/warmup/domain/settling.py) has its watermark behind its clock. `quiet_until` is
-- the hour before which, with the sends counted so far, it has nothing to decide: the
-- close-days sweep leaves it alone until then (its day closing, its resume or its idle
-- deadline), instead of bringing it up to date for nothing. NULL: no such promise, the
-- sweep judges it as soon as an hour closes. Writing a state clears it.
ALTER TABLE warmup_ips ADD COLUMN quiet_until timestamptz;
