-- Repair mode (issue 18): a run extracted by `dwh run <p> --repair` overwrites the rows
-- bronze already has (ON CONFLICT DO UPDATE) instead of skipping them, so a fix in the
-- catalog (a unit conversion, a geometry expression) reaches rows loaded wrong. The
-- flag lives on the run so a repair part that waits in exports/ is still loaded as one.
-- Applied as the pipeline owner.

ALTER TABLE {control}.extract_runs
    ADD COLUMN repair boolean NOT NULL DEFAULT false;
