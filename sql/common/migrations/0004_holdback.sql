-- Hold-back (issue 18): how far each run's upper bound sits below the source clock,
-- and, when an open source transaction lowered it, which session that was. One
-- session left "idle in transaction" holds every incremental table at its start for as
-- long as it lives; these columns are what `dwh health`, `dwh verify`, the run
-- artifact and the held-back event read.
-- Applied as the pipeline owner.

ALTER TABLE {control}.extract_runs
    ADD COLUMN source_now          timestamptz,
    ADD COLUMN holdback_seconds    double precision,
    ADD COLUMN holder_pid          integer,
    ADD COLUMN holder_application  text,
    ADD COLUMN holder_state        text,
    ADD COLUMN holder_since        timestamptz;
