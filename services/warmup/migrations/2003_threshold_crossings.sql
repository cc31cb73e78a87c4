-- The sends that crossed a threshold a coming decision can compare with (a daily or hourly
-- limit, the complaint-spike check), noted while counting: a limit event or a suspension
-- names its crossing send as `causationid` whatever batch or sweep decides it later
-- (services/warmup/domain/crossings.py). Kept for the IP's current days only.
CREATE TABLE threshold_crossings (
    ip_id        text        NOT NULL,
    threshold    text        NOT NULL CHECK (threshold IN ('daily_limit', 'hourly_limit',
                                                            'complaint_spike')),
    window_start timestamptz NOT NULL,  -- the window's first hour: its day, its hour, its phase
    reached      integer     NOT NULL,  -- the count met (0 for the complaint spike, a rate)
    -- The window ends with the judged hour, any from first_hour to last_hour (one UTC day).
    first_hour   timestamptz NOT NULL,
    last_hour    timestamptz NOT NULL,
    event_id     text        NOT NULL,  -- the send.recorded event that crossed it
    PRIMARY KEY (ip_id, threshold, window_start, reached, first_hour)
);
-- What the close-days sweep forgets a day at a time.
CREATE INDEX threshold_crossings_by_window ON threshold_crossings (window_start);
