-- Freshness from the schedule (issue 18): when each table's next load is due, written
-- by every load from the catalog's `schedule:` (the ingest deployment's cron and time
-- zone) plus its grace, so Grafana (v_table_due) applies the same rule as dwh health,
-- dwh verify and the automations instead of a fixed lag.
-- Applied as the pipeline owner.

ALTER TABLE {control}.extract_watermarks
    ADD COLUMN due_at timestamptz;
