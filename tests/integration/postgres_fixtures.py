"""A real PostgreSQL server for the production-instance tests.

LLMPLAT_TEST_POSTGRES_URL (postgresql://user:password@host:port/db) names a running one; otherwise a throwaway
cluster is made with Debian's initdb/pg_ctl on a free loopback port (as the `postgres` user when running as root,
since PostgreSQL refuses to run as root). Neither available is a test failure that says what to install, never a
skip: `.ci/run` installs the `postgresql` package.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

USER, PASSWORD, DB = "dagster", "test-only-password", "dagster"


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<n>/bin with initdb (Debian's layout), else pg_ctl on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl and shutil.which("initdb") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], as_user: list[str]) -> None:
    done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("LLMPLAT_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail(
            "No PostgreSQL server for the production-instance tests: install the server binaries "
            "(Debian: `apt-get install -y postgresql`; .ci/run does it) or set "
            "LLMPLAT_TEST_POSTGRES_URL=postgresql://user:password@host:port/db to use a running one.",
            pytrace=False,
        )
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="llmplat-pg-"))
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no `postgres` user to run the server as", pytrace=False)
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    (base / "pw").write_text(PASSWORD + "\n")
    if as_user:
        os.chown(base / "pw", pwd.getpwnam("postgres").pw_uid, -1)
    data, port = base / "data", free_port()
    _run([str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={base / 'pw'}", "-A", "scram-sha-256",
          "-E", "UTF8", "--no-sync", "--no-instructions"], as_user)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "-t", "30",
          "start"], as_user)  # fmt: skip
    try:
        import psycopg2  # dagster-postgres's driver

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {DB}")
        conn.close()
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DB}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for a postgresql:// URL."""
    u = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": u.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(u.port or 5432),
        "DAGSTER_PG_USERNAME": u.username or "",
        "DAGSTER_PG_PASSWORD": u.password or "",
        "DAGSTER_PG_DB": u.path.lstrip("/") or "postgres",
    }
