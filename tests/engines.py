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
import time
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
        _as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                     "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}")
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


SLURM_CONF = """\
ClusterName=optsweep
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
JobRequeue=1
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def slurm_cluster() -> Iterator[dict]:
    """A single-node SLURM cluster on localhost (Debian's slurm-wlm and munge), its state and
    spool in a temporary directory; yields the environment its clients need (SLURM_CONF)."""
    tools = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo")
    if os.geteuid() != 0:
        missing("the single-node SLURM cluster runs its daemons as root")
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        missing(f"no {', '.join(absent)} (Debian: apt-get install slurm-wlm munge)")
    root = Path(tempfile.mkdtemp(prefix="optsweep-slurm-"))
    (root / "state").mkdir()
    (root / "spool").mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), root=root, cpus=os.cpu_count(),
                                      ctld_port=free_port(), d_port=free_port()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    run = lambda *command: subprocess.run(command, check=True, capture_output=True, text=True,  # noqa: E731
                                          timeout=60, env=env)
    try:
        run("munged", "--force", f"--key-file={key}", f"--socket={root}/munge.sock",
            f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
            f"--seed-file={root}/munged.seed")
        run("slurmctld", "-i", "-f", str(conf))
        run("slurmd", "-f", str(conf))
        deadline = time.monotonic() + 60
        while "idle" not in run("sinfo", "-h", "-o", "%t").stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("SLURM's node never became idle: " +
                                   (root / "slurmctld.log").read_text()[-2000:])
            time.sleep(0.5)
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, timeout=60)
        subprocess.run(["munged", "--stop", f"--socket={root}/munge.sock"], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)
