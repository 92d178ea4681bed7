"""The core every other part of `dwh` stands on: settings, the catalog, SQL files, blocks.

Lives here: settings (one class per concern), catalog (pipelines as data), sqlfiles,
migrate, schedule, blocks and results (Prefect blocks made from settings), automations,
faults (failpoints) and transient (which failures a retry may get past).
May import: the standard library and third-party packages only, never another `dwh`
subpackage (tests/test_layers.py checks it).
"""
