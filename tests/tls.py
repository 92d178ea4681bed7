"""A throwaway certificate authority and a server certificate for 127.0.0.1 (openssl CLI)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signed the server's certificate
    other_ca: Path  # signed nothing here: trusting only it must fail
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip


def server_certificates(folder: Path) -> Certificates:
    """In `folder`: CAs test-ca and other-ca, and server.crt/.key for IP 127.0.0.1 signed by test-ca."""
    _make_ca(folder, "test-ca")
    _make_ca(folder, "other-ca")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "test-ca.crt", "-CAkey", "test-ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
        cwd=folder,
    )  # fmt: skip
    return Certificates(
        folder / "test-ca.crt", folder / "other-ca.crt", folder / "server.crt", folder / "server.key"
    )
