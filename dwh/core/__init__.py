"""The core every other part of `dwh` stands on: settings, the catalog, SQL files, blocks.

Lives here: settings (one class per concern), catalog (pipelines as data) and export_spec
(its `export:` section), names (schemas, roles, lock keys), sqlfiles,
migrate, schedule, blocks and results (Prefect blocks made from settings), automations,
faults (failpoints) and transient (which failures a retry may get past).
May import: the standard library and third-party packages only, never another `dwh`
subpackage (tests/test_layers.py checks it).
"""
