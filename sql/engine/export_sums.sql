-- SHA256SUMS of the new version (`sha256sum -c` format), every document in path order.
SELECT sha256, path, document FROM {control}.export_documents ORDER BY path
