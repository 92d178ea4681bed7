-- Published versions, newest first: retention keeps the first DWH_EXPORT_KEEP_VERSIONS.
SELECT version
FROM {control}.export_versions
WHERE status = 'published'
ORDER BY finished_at DESC, version DESC
