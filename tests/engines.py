"""Real engines for the tests, started by the tests themselves: a PostgreSQL server on loopback.

Debian's PostgreSQL server refuses to run as root, so it runs as the ``postgres`` user in a
directory that user owns (pytest's temporary directories are root-only). Host connections use
password authentication (scram-sha-256), as a shared server would; plain ``initdb`` trusts everyone.

Where an engine is missing the tests skip with a one-line reason, except under ``CI=true``, where
they fail: CI installs every engine (``.ci/run``), so a skip there is a missing install step.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

PG_USER, PG_PASSWORD, PG_DATABASE = "optsweep", "s3cret-pw", "optsweep"


def missing(reason: str) -> None:
    """Skip, or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120,
                          **kwargs)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL server on a loopback port; yields a SQLAlchemy URL with a password."""
    bindir = postgres_bin()
    if bindir is None:
        missing("no PostgreSQL server (Debian: apt-get install postgresql)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        missing("no 'postgres' user to run the server as")
    try:
        import psycopg  # noqa: F401  SQLAlchemy 2.1's default PostgreSQL driver (psycopg 3)
    except ImportError:
        missing("no psycopg (pip install -e '.[postgres]')")
    root = Path(tempfile.mkdtemp(prefix="optsweep-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    password_file = root / "pw"
    password_file.write_text(PG_PASSWORD + "\n")
    shutil.chown(password_file, "postgres", "postgres")
    try:
        _as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                     "--auth-host=scram-sha-256", f"--pwfile={password_file}")
        _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                     f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
        sql = (f"CREATE USER {PG_USER} PASSWORD '{PG_PASSWORD}'; "
               f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER};")
        for statement in sql.split("; "):
            _as_postgres(str(bindir / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres",
                         "-d", "postgres", "-c", statement.rstrip(";"))
        yield f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
