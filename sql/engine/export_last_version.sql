-- The version readers see now (the newest published), and what rendered it.
SELECT version, renderer_hash
FROM {control}.export_versions
WHERE status = 'published'
ORDER BY finished_at DESC, version DESC
LIMIT 1
