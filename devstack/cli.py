"""`dwh dev up|down|env`: the dev stack's commands (loaded lazily by `dwh.cli`)."""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devstack.stack import down, env, up
from devstack.state import DEFAULT_STATE_DIR, DevStackError

if TYPE_CHECKING:
    from collections.abc import Iterator


dev_app = typer.Typer(
    name="dev",
    help="A throwaway local stack without Docker: PostgreSQL/PostGIS, S3, Prefect.",
    no_args_is_help=True,
)


StateDirOption = Annotated[
    Path,
    typer.Option("--state-dir", help="Where the stack keeps data, logs and stack.json."),
]


@contextmanager
def reported_errors() -> Iterator[None]:
    """Show a DevStackError as a message and exit 1, rather than as a traceback."""
    try:
        yield
    except DevStackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


@dev_app.command("up")
def up_command(
    s3: Annotated[bool, typer.Option("--s3/--no-s3", help="Also run moto as local S3.")] = False,
    prefect: Annotated[
        bool, typer.Option("--prefect/--no-prefect", help="Also run a Prefect server.")
    ] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Start the stack, reusing whatever already runs."""
    with reported_errors():
        info = up(state_dir, s3=s3, prefect=prefect)
    typer.echo(f"started: {', '.join(info.started) or 'nothing, all was running'}")
    command = shlex.join(["dwh", "dev", "env", "--state-dir", str(info.state_dir)])
    typer.echo(f'load its variables with: eval "$({command})"')


@dev_app.command("down")
def down_command(
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the state dir: data, logs, secrets."),
    ] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Stop what `up` started, and nothing else."""
    with reported_errors():
        stopped = down(state_dir, purge=purge)
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing, none was running'}")


@dev_app.command("env")
def env_command(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Print `export NAME='value'` lines for the running stack (use with eval)."""
    with reported_errors():
        variables = env(state_dir)
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
