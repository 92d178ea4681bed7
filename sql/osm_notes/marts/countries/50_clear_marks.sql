-- Clear the marks this refresh handled. A mark the ETL set again meanwhile has a new
-- `mark` value and stays, so those facts are picked up by the next refresh.
DELETE FROM {dwh}.datamart_dirty_countries AS m
USING dm_targets AS t
WHERE m.country_id = t.id
    AND m.mark = t.mark;
