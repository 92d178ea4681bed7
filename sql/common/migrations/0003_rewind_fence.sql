-- Backfill wins over recovery (issue 18). A rewind records the newest run that existed
-- when it happened; loading such a run (a leftover still waiting in exports/) adds its
-- rows but never moves the watermark again, so the next extract starts from the
-- rewind point and not from the leftover's upper bound.
-- Applied as the pipeline owner.

ALTER TABLE {control}.extract_watermarks
    ADD COLUMN rewound_through_run bigint;

COMMENT ON COLUMN {control}.extract_watermarks.rewound_through_run IS
    'runs with run_id <= this were extracted before the last backfill/reseed: their load never advances last_extracted_at';
