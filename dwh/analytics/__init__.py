"""Analytics on top of bronze: the star schema, datamarts and the JSON export.

Lives here: transform (the SQL step runner and the star schema), datamarts,
rebuild_check, export and publish (versioned JSON documents, or in place on S3).
May import: `dwh.core` and `dwh.ingest` (tests/test_layers.py checks it).
"""
