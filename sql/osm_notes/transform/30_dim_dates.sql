-- Calendar days the staged facts need (action days and note creation days).
INSERT INTO {dwh}.dim_dates
WITH
keys AS (
    SELECT action_date_key AS date_key FROM etl_facts
    UNION
    SELECT opened_date_key FROM etl_facts
),

days AS (
    SELECT k.date_key, to_date(k.date_key::text, 'YYYYMMDD') AS date
    FROM keys AS k
    WHERE NOT EXISTS (SELECT FROM {dwh}.dim_dates AS d WHERE d.date_key = k.date_key)
)

SELECT
    date_key,
    date,
    extract(year FROM date)::smallint,
    extract(quarter FROM date)::smallint,
    extract(month FROM date)::smallint,
    extract(day FROM date)::smallint,
    extract(isoyear FROM date)::smallint,
    extract(week FROM date)::smallint,
    extract(isodow FROM date)::smallint,
    extract(doy FROM date)::smallint,
    trim(to_char(date, 'Month')),
    trim(to_char(date, 'Day')),
    extract(isodow FROM date) >= 6
FROM days;
