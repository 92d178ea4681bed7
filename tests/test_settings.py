"""Connection settings without a server: which sslmode applies, what a URL keeps, what an error shows."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from dwh.core.block_apply import connection_components
from dwh.core.blocks import postgres_url
from dwh.core.settings import SourceSettings, UrlError, WarehouseSettings


def _params(conninfo: str) -> dict[str, str]:
    return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}


@pytest.mark.parametrize(
    ("url", "sslmode"),
    [
        ("postgresql://reader:pw@db.example.com:5432/src", "verify-full"),
        ("postgresql://reader:pw@10.0.0.7/src", "verify-full"),
        ("postgresql://reader:pw@127.0.0.1:5432/src", "prefer"),
        ("postgresql://reader:pw@localhost/src", "prefer"),
        ("postgresql://reader:pw@%2Fvar%2Frun%2Fpostgresql/src", "prefer"),
        ("postgresql://reader:pw@db.example.com/src?sslmode=require", "require"),
    ],
)
def test_tls_is_verified_by_default_off_loopback_and_a_urls_own_sslmode_is_kept(
    monkeypatch: pytest.MonkeyPatch, url: str, sslmode: str
) -> None:
    monkeypatch.delenv("DWH_SOURCE_SSLMODE", raising=False)
    assert _params(SourceSettings(url=SecretStr(url)).conninfo())["sslmode"] == sslmode


def test_the_sslmode_setting_applies_where_the_url_names_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DWH_WAREHOUSE_SSLMODE", "require")
    plain = WarehouseSettings(url=SecretStr("postgresql://db.example.com/wh"))
    own = WarehouseSettings(
        url=SecretStr("postgresql://db.example.com/wh?sslmode=verify-full&sslrootcert=/ca.pem")
    )
    assert _params(plain.owner_conninfo("fleet"))["sslmode"] == "require"
    params = _params(own.owner_conninfo("fleet"))
    assert (params["sslmode"], params["sslrootcert"], params["user"]) == (
        "verify-full",
        "/ca.pem",
        "fleet_owner",
    )


def test_connection_blocks_keep_every_url_parameter() -> None:
    from prefect_sqlalchemy import SqlAlchemyConnector  # noqa: PLC0415

    url = SecretStr("postgresql://reader:pw@db.example.com:6432/src?sslmode=verify-full&sslrootcert=/ca.pem")
    components = connection_components(url, "DWH_SOURCE_URL")
    assert components.query == {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}
    back = postgres_url(SqlAlchemyConnector(connection_info=components), "DWH_SOURCE_BLOCK", "dwh-source")
    params = _params(SourceSettings(url=back).conninfo())
    assert params == {
        "user": "reader",
        "password": "pw",
        "host": "db.example.com",
        "port": "6432",
        "dbname": "src",
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
        "application_name": "dwh-extract",
    }


@pytest.mark.parametrize("url", ["postgresql://reader:s3cr%t@db/src", "host=db password='s3cr"])
def test_an_unparsable_url_names_the_setting_and_never_the_value(url: str) -> None:
    with pytest.raises(UrlError) as caught:
        SourceSettings(url=SecretStr(url)).conninfo()
    assert "DWH_SOURCE_URL is not a valid PostgreSQL URL" in str(caught.value)
    assert "s3cr" not in str(caught.value)
    assert caught.value.__suppress_context__, "the libpq message quoting the value is not chained"
