"""Operations: what keeps a deployed pipeline healthy and what vouches for it.

Lives here: guard (every flow and command starts there), health, verify, preflight,
backup and maintenance.
May import: `dwh.core` and `dwh.ingest` (tests/test_layers.py checks it).
"""
