"""A throwaway local stack without Docker: PostgreSQL/PostGIS, moto S3 and Prefect.

Development only: neither the wheel nor the worker image ships it (moto is a dev
dependency); `dwh dev ...` imports it lazily. `up` starts whatever is missing and records
every process it starts, with the generated passwords, in `<state_dir>/stack.json`;
`down` stops only what that record names, so it never touches a process it did not
start; `env` turns the record into the variables `dwh.core.settings` reads.

Modules: state (names, record), processes (supervision), postgres (the cluster),
services (moto, Prefect), stack (up/down/env), cli (`dwh dev`). May import `dwh.core`.
"""

from devstack.postgres import pg_ctl, postgres_ready
from devstack.processes import (
    free_port,
    http_status,
    log_tail,
    start_detached,
    venv_script,
    wait_gone,
    wait_ready,
)
from devstack.services import create_bucket
from devstack.stack import down, env, up
from devstack.state import (
    DB_OS_USER,
    DEFAULT_STATE_DIR,
    HOST,
    MOTO_KEY,
    PG_BIN,
    READER_ROLE,
    S3_BUCKET,
    S3_PREFIX,
    S3_REGION,
    SOURCE_DATABASE,
    SOURCE_ROLE,
    SUPERUSER,
    WAREHOUSE_DATABASE,
    DevStackError,
    Passwords,
    Service,
    StackInfo,
    StackRecord,
    load_record,
    pgdata_dir,
    save_record,
)

__all__ = [
    "DB_OS_USER",
    "DEFAULT_STATE_DIR",
    "HOST",
    "MOTO_KEY",
    "PG_BIN",
    "READER_ROLE",
    "S3_BUCKET",
    "S3_PREFIX",
    "S3_REGION",
    "SOURCE_DATABASE",
    "SOURCE_ROLE",
    "SUPERUSER",
    "WAREHOUSE_DATABASE",
    "DevStackError",
    "Passwords",
    "Service",
    "StackInfo",
    "StackRecord",
    "create_bucket",
    "down",
    "env",
    "free_port",
    "http_status",
    "load_record",
    "log_tail",
    "pg_ctl",
    "pgdata_dir",
    "postgres_ready",
    "save_record",
    "start_detached",
    "up",
    "venv_script",
    "wait_gone",
    "wait_ready",
]
