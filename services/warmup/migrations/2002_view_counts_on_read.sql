-- The stored view leaves out the running counts (`sent_today`, the current day's `sent`,
-- the reputation score), which every send changes: they are read back from the daily
-- counts, as of the day the view was rendered for (`counted_on`) and over the score's
-- window (`score_since`..`counted_on`). A send batch then rewrites only the views whose
-- state it changed. Rows written before this keep their stored counts (NULL `counted_on`)
-- until their IP's next change.
ALTER TABLE ip_warmup_views
    ADD COLUMN counted_on date,
    ADD COLUMN score_since date,
    ALTER COLUMN reputation_score DROP NOT NULL;
