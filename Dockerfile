# The image Prefect docker, kubernetes and ECS workers run flow runs in: the locked
# environment, installed by the same `uv sync --frozen` CI runs (scripts/bootstrap)
# without the dev tools, plus the code, SQL and catalogs, run as a non-root user.
# No secret is baked in: connections come from the job's environment or from Prefect
# blocks at run time (README "Deploying").
#
#   docker build -t dwh-kit .        (or `prefect deploy --all`, which builds and pushes)

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11.7-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode compiled at build time (faster starts); the base image's interpreter, never a
# downloaded one. No BuildKit-only syntax: prefect-docker's default builder is the classic
# one, and the build stage (with uv's cache) is thrown away anyway.
ENV UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /opt/dwh
# Dependencies first, alone: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --quiet --no-dev --no-install-project
COPY dwh ./dwh
COPY flows ./flows
COPY tasks ./tasks
# The project is installed editable, which uv does not compile, and uid 10001 cannot
# write /opt/dwh: without this every flow run compiles our modules again (~0.2 s).
RUN uv sync --frozen --quiet --no-dev \
    && .venv/bin/python -m compileall -q dwh flows tasks

FROM python:3.11.7-slim-bookworm
# pg_dump/pg_restore for the backup deployments, of the warehouse's major version
# (bookworm ships PostgreSQL 15, like the servers we support): a newer client would
# write archives an older pg_restore cannot read, an older one refuses a newer server.
# Versions come from the base image's Debian release; hadolint's pin rule would only
# break the build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it. /var/tmp/dwh is the
# spool for backups and imported CSV files (prefect.yaml mounts a volume there; a new
# volume inherits the owner). Extracts stream their parts to storage without it.
RUN groupadd --system --gid 10001 dwh \
    && useradd --system --uid 10001 --gid dwh --create-home --home-dir /home/dwh dwh \
    && install -d -o dwh -g dwh /var/tmp/dwh
WORKDIR /opt/dwh
# Same path as in the build stage: the venv's scripts and the editable install point here.
# Code stays root-owned: the flow runs can read it, not change it.
COPY --from=build /opt/dwh /opt/dwh
COPY sql ./sql
COPY pipelines ./pipelines
COPY prefect.yaml ./
# PREFECT_LOGGING_EXTRA_LOGGERS: the engine's own warnings (a stray file in exports/, a
# retried statement) reach the flow run's logs in the UI, not only the container's stderr.
ENV PATH=/opt/dwh/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/var/tmp/dwh \
    PREFECT_LOGGING_EXTRA_LOGGERS=dwh
USER 10001
# Workers replace the command with prefect.yaml's `python -m prefect.engine` (the PATH
# above makes it this venv's); by hand, `dwh` answers.
CMD ["dwh", "--help"]
