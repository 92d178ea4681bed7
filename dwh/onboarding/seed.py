"""Fill a pipeline's source (OLTP) database with realistic data: `dwh seed-source`.

The generator of each pipeline is two files under `sql/<pipeline>/source/`:
`schema.sql` (idempotent DDL) and `generate.sql` (set-based inserts taking psycopg
named parameters such as `%(rows)s`). Both run in one transaction, so a failed seed
leaves the source exactly as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from dwh.core.settings import redact_conninfo

SCHEMA_FILE = "schema.sql"
GENERATE_FILE = "generate.sql"

_PIPELINE_NAME = re.compile(r"[a-z][a-z0-9_]*")

# Tables of the source's `public` schema, minus those an extension owns (PostGIS
# puts spatial_ref_sys there), i.e. the tables the generator is responsible for.
_SOURCE_TABLES = sql.SQL(
    """
    SELECT c.relname
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
        AND c.relkind IN ('r', 'p')
        AND NOT EXISTS (
            SELECT 1
            FROM pg_catalog.pg_depend AS d
            WHERE d.classid = 'pg_catalog.pg_class'::regclass
                AND d.objid = c.oid
                AND d.deptype = 'e'
        )
    ORDER BY c.relname
    """
)
_COUNT_ROWS = sql.SQL("SELECT count(*) FROM {table}")


class SourceGeneratorMissingError(FileNotFoundError):
    """The pipeline has no source generator (or only half of one) under the SQL dir."""


class SourceSeedError(RuntimeError):
    """A generator statement failed; the message names the file and line."""


def source_generator_files(pipeline: str, sql_dir: Path) -> tuple[Path, Path]:
    """Locate `schema.sql` and `generate.sql` of a pipeline, or say which one is missing."""
    if not _PIPELINE_NAME.fullmatch(pipeline):
        # The name becomes a path: refuse anything that could leave sql_dir.
        msg = f"pipeline name must match {_PIPELINE_NAME.pattern}, got {pipeline!r}"
        raise ValueError(msg)
    source_dir = sql_dir / pipeline / "source"
    files = (source_dir / SCHEMA_FILE, source_dir / GENERATE_FILE)
    for path in files:
        if not path.is_file():
            msg = (
                f"pipeline {pipeline!r} has no source generator: {path} does not exist "
                f"(expected {SCHEMA_FILE} and {GENERATE_FILE} in {source_dir})"
            )
            raise SourceGeneratorMissingError(msg)
    return files


def seed_source(conninfo: str, pipeline: str, *, rows: int, sql_dir: Path, **params: int) -> dict[str, int]:
    """Create the pipeline's source tables if needed and add one batch of rows.

    Runs `<sql_dir>/<pipeline>/source/schema.sql`, then `generate.sql` with the
    named parameters `rows` plus `params`, in a single transaction, and returns
    the row count of every source table (`public`, extension tables excluded)
    afterwards. Calling it again adds another batch: that is how tests and demos
    produce "new rows since the last extract".

    For `fleet`, with N = `rows` (integer division throughout):

    - devices: greatest(10, N / 10000) on the first call (2,000,000 -> 200);
      later calls add none but touch greatest(1, devices / 20) of them
      (new sim_number, updated_at = now()).
    - position_history: +N per call, dealt evenly over the devices (the first
      N mod devices get one more); each device's gps_time continues after its
      latest one, so UNIQUE (device_id, gps_time) holds; every 50th fix has a
      NULL geom, the rest are SRID 4326 points in lon 36.6..37.1,
      lat -1.45..-1.15 (Nairobi).
    - trips: +N / 100 per call (every 101st still open: no end, distance or
      end_geom); alarms: +N / 50 per call (every 20th geom NULL).
    - live_positions: one row per device that has a position, upserted to its
      newest fix on every call.
    - geofences: 25 polygons, created on the first call only.
    - recorded_at: the first call (no position/trip/alarm yet) spreads it over
      the past ~30 days, trailing gps_time by seconds, hours or days and always
      below now(); every later call stamps rows strictly after the largest
      recorded_at already present and at most the transaction's now().
    - Text: the first rows of devices.name/driver_name/notes, alarms.message,
      position_history.raw_payload and geofences.name carry commas, quotes,
      LF and CRLF, backslashes (trailing, and a bare `\\N`), tabs, Swahili,
      Arabic, Chinese, emoji, '' and NULL; N >= 750 puts every kind in alarms
      and N >= 15 in raw_payload (devices always hold all of them).

    A batch of 100,000+ rows that is at least 1/20 of position_history is bulk
    loaded: the device foreign key and the recorded_at index are dropped and
    rebuilt inside the transaction, which locks position_history until commit.
    2,000,000 rows take about 20 s on 2 cores.

    Raises:
        SourceGeneratorMissingError: the pipeline has no schema.sql/generate.sql.
        ValueError: a negative row count or a malformed pipeline name.
        SourceSeedError: connecting or a statement failed (file and line in the message).
    """
    schema_path, generate_path = source_generator_files(pipeline, sql_dir)
    bind: dict[str, int] = {"rows": rows, **params}
    for name, value in bind.items():
        if value < 0:
            msg = f"seed-source {pipeline}: {name} must be >= 0, got {value}"
            raise ValueError(msg)

    try:
        # client_encoding pinned because the files are sent as UTF-8 bytes.
        conn = psycopg.connect(conninfo, client_encoding="utf8")
    except psycopg.OperationalError as exc:
        msg = f"seed-source {pipeline}: cannot connect to {redact_conninfo(conninfo)}: {exc}"
        raise SourceSeedError(msg) from exc
    with conn:
        _run_file(conn, schema_path, None)
        _run_file(conn, generate_path, bind)
        try:
            return _count_source_rows(conn)
        except psycopg.Error as exc:
            msg = f"counting source rows in {redact_conninfo(conninfo)}: {exc}"
            raise SourceSeedError(msg) from exc


def _run_file(conn: psycopg.Connection[TupleRow], path: Path, params: dict[str, int] | None) -> None:
    """Execute every statement of a SQL file, naming the file and line on failure."""
    text = path.read_bytes()
    if params is not None:
        # A file holds many statements, which server-side binding cannot carry:
        # merge the values client-side (psycopg quotes them) and send plain SQL.
        try:
            with psycopg.ClientCursor(conn) as cursor:
                text = cursor.mogrify(text, params).encode()
        except (KeyError, psycopg.ProgrammingError) as exc:
            msg = f"{path}: cannot bind parameters {sorted(params)}: {exc!r}"
            raise SourceSeedError(msg) from exc
    try:
        conn.execute(text)
    except psycopg.Error as exc:
        raise SourceSeedError(_describe_failure(path, text, exc)) from exc


def _describe_failure(path: Path, sent: bytes, exc: psycopg.Error) -> str:
    """Point at the failing line: binding never adds newlines, so lines match the file."""
    where = str(path)
    position = exc.diag.statement_position
    if position and position.isdigit():
        before = sent.decode()[: int(position) - 1]
        where = f"{path}:{before.count(chr(10)) + 1}"
    message = f"{where}: {type(exc).__name__}: {str(exc).strip()}"
    # Errors inside DO blocks carry no position, only the PL/pgSQL context.
    if exc.diag.context:
        message += f" (context: {exc.diag.context.strip()})"
    return message


def _count_source_rows(conn: psycopg.Connection[TupleRow]) -> dict[str, int]:
    tables = [str(row[0]) for row in conn.execute(_SOURCE_TABLES)]
    counts: dict[str, int] = {}
    for table in tables:
        row = conn.execute(_COUNT_ROWS.format(table=sql.Identifier("public", table))).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
