-- Snapshot extract: the whole table, as one consistent COPY.
COPY (
    SELECT {select}
    FROM {source}
) TO STDOUT WITH (FORMAT csv);
