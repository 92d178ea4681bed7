-- Up to ten of the invalid state transitions this run found, for the log (not a step).
SELECT w.note_id, w.sequence, f.action, f.status_before
FROM etl_written AS w
JOIN etl_facts AS f USING (note_id, sequence)
WHERE NOT w.is_valid_transition
    AND w.valid_before IS DISTINCT FROM false
ORDER BY w.note_id, w.sequence
LIMIT 10;
