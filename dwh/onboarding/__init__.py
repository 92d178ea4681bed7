"""Onboarding: from a live source to a catalog, bronze DDL and sample data.

Lives here: introspect (reads a source's catalogs), proposal (`dwh init`), bronze_ddl
(`dwh migrations generate`) and seed (`dwh seed-source`: generated sample sources).
May import: `dwh.core` and `dwh.ingest` (tests/test_layers.py checks it).
"""
