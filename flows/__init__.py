"""Prefect flows: each reads like its runbook; tasks/ act and dwh/ computes.

Importing any of them first makes all of the process's Prefect API clients share one
TLS context (flows/api_tls.py): Prefect 3.8 otherwise loads the CA bundle anew for each.
"""

from flows.api_tls import share_api_tls_context

share_api_tls_context()
