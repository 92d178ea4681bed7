"""The ingest engine: source ─COPY─▶ CSV parts ─▶ storage ─COPY─▶ bronze, with its run log.

Lives here: engine (the one way to a pipeline's databases and storage), storage, parts,
extract, copy_out (one COPY streamed into parts), split (a window read as key ranges
at once), load, runlog, holdback, locks, drift (the check every extract runs first),
csv_import, reconcile, progress and report (the per-table summary).
May import: `dwh.core` only (tests/test_layers.py checks it).
"""
