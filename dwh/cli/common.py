"""What every `dwh` command shares: the typer app, the consoles, failing with a message."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from dwh.operations.verify import Gate


app = typer.Typer(help="Prefect-native extract → object storage → load pipelines.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=1)


# Without PREFECT_API_URL, Prefect starts a temporary server for the run and gives it
# 20 s; on a busy 2-core machine that is too little, and the run failed before touching a
# table. A generous limit costs nothing when the server is quick.
EPHEMERAL_STARTUP_SECONDS = "180"
_EPHEMERAL_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@app.callback()
def _configure() -> None:
    """Set before any command imports Prefect, which reads its settings once, at import."""
    os.environ.setdefault(_EPHEMERAL_TIMEOUT, EPHEMERAL_STARTUP_SECONDS)


@contextmanager
def prefect_server() -> Iterator[None]:
    """Around a command that needs a Prefect API: when the temporary one cannot start, say what to run."""
    try:
        yield
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        seconds = os.environ.get(_EPHEMERAL_TIMEOUT, EPHEMERAL_STARTUP_SECONDS)
        raise fail(
            f"PREFECT_API_URL is not set and the temporary Prefect server did not start within "
            f"{seconds} s ({_EPHEMERAL_TIMEOUT}). Point PREFECT_API_URL at your Prefect server, or "
            'start one: `dwh dev up --prefect && eval "$(dwh dev env)"` (or `prefect server start`)'
        ) from None


def gate_table(title: str, gates: list[Gate]) -> Table:
    """Pass/fail rows in the shape `dwh verify` prints, with the fix of each failure."""
    failed = any(not g.ok for g in gates)
    table = Table("gate", "table", "result", "detail", *(["fix"] if failed else []), title=title)
    for gate in gates:
        result = "[green]pass[/]" if gate.ok else "[red]FAIL[/]"
        table.add_row(
            gate.gate, gate.table, result, gate.detail, *([gate.fix if not gate.ok else ""] if failed else [])
        )
    return table


def attempt(action: Callable[[], T], *errors: type[Exception]) -> T:
    """A command's work; a failure it expects (bad config, a refused role) exits 1 with its message."""
    try:
        return action()
    except errors as exc:
        raise fail(str(exc)) from exc


def verdict(
    table: Table | None,
    failed: Sequence[object],
    total: int,
    what: str,
    *,
    passed: str | None,
    named: str = "",
) -> None:
    """Print the checks' table, then exit 1 saying how many of `what` failed (and which), else `passed`."""
    if table is not None:
        console.print(table)
    if failed:
        raise fail(f"{len(failed)} of {total} {what} failed" + (f": {named}" if named else ""))
    if passed is not None:
        console.print(passed)


def renamed_option(value: bool, new: str, *, old_given: bool, old: str) -> bool:
    """A flag under its new name or its old one; the old one still works for a release, with a warning."""
    if old_given:
        err.print(f"[yellow]{old} is deprecated and goes in the next release: use {new}[/]", highlight=False)
    return value or old_given
