"""The `dwh` command: one entry point for operators (typer).

Every command reads its configuration from the environment (see `.env.example`);
`eval "$(dwh dev env)"` points them all at the throwaway dev stack. The commands live in
modules by subject, as the README's tables list them: setup, run, onboarding and
operations; `common` holds what they share. None imports Prefect or the flows at import
time (tests/test_fast_start.py): a command that runs a flow imports it when it runs.
"""

from __future__ import annotations

import sys

from dwh.cli import onboarding, operations, run, setup
from dwh.cli.common import app

__all__ = ["app", "onboarding", "operations", "run", "setup"]


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
