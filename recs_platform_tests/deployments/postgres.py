"""A throwaway PostgreSQL server from Debian's `postgresql` package, on 127.0.0.1 only.

`initdb` into a fresh folder, `pg_ctl start` on a free port with the socket in that folder, a
database and a password-protected user for the test, and `pg_ctl stop` plus removal at the end.
PostgreSQL refuses to run as root, so under root (CI) every server command runs as the `postgres`
user through `runuser`. Missing binaries fail the test, naming the package: CI installs it.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install postgresql (Debian's package; .ci/run installs it)"
COMMAND_TIMEOUT_S = 60
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        """The variables deployments/dagster/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
            connect_timeout=10,
        )


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb; fails the test if none."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not found:
        pytest.fail(f"PostgreSQL's server binaries are missing: {INSTALL_HINT}", pytrace=False)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _runner() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid that server commands run with."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"no `postgres` user to run the server as: {INSTALL_HINT}", pytrace=False)
    return ["runuser", "-u", "postgres", "--"], account.pw_uid, account.pw_gid


def _run(prefix: list[str], *command: str | Path) -> None:
    result = subprocess.run(
        [*prefix, *map(str, command)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    prefix, uid, gid = _runner()
    # Not under pytest's temporary folder: its parents are private to root, and the server runs
    # as `postgres`. /tmp itself is world-traversable.
    root = Path(tempfile.mkdtemp(prefix="recs-pg-"))
    data = root / "data"
    socket_dir = root / "socket"
    server = PostgresServer(
        host="127.0.0.1",
        port=_free_port(),
        user="recs_dagster",
        password="test-only-password",
        database="dagster",
    )
    started = False
    try:
        socket_dir.mkdir()
        password_file = root / "superuser-password"
        password_file.write_text("superuser-test-only\n")
        if uid is not None:
            for path in (root, socket_dir, password_file):
                os.chown(path, uid, gid)
        _run(
            prefix,
            bin_dir / "initdb",
            "--pgdata",
            data,
            "--username",
            "postgres",
            "--pwfile",
            password_file,
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            prefix,
            bin_dir / "pg_ctl",
            "start",
            "--pgdata",
            data,
            "--wait",
            "--timeout",
            str(START_TIMEOUT_S),
            "--log",
            root / "server.log",
            "-o",
            options,
        )
        started = True
        psql = [bin_dir / "psql", "-h", socket_dir, "-p", str(server.port), "-U", "postgres"]
        _run(
            prefix,
            *psql,
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            f"CREATE ROLE {server.user} LOGIN PASSWORD '{server.password}'",
            "-c",
            f"CREATE DATABASE {server.database} OWNER {server.user}",
        )
        yield server
    finally:
        if started:
            _run(
                prefix,
                bin_dir / "pg_ctl",
                "stop",
                "--pgdata",
                data,
                "--mode",
                "fast",
                "--wait",
                "--timeout",
                str(START_TIMEOUT_S),
            )
        shutil.rmtree(root, ignore_errors=True)
