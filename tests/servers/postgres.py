"""A throwaway PostgreSQL for the tests: initdb in a temp folder, 127.0.0.1, a free port.

Found under /usr/lib/postgresql/*/bin (Debian's layout). PostgreSQL refuses to run as root, so
as root the cluster belongs to the `postgres` user (or `nobody`) and runs under `runuser`. The
server is stopped by the PID in its postmaster.pid, never by name.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, text

from tests.servers import free_port

USER = "intake"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _run_as() -> list[str]:
    """The command prefix that runs a program as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot drop to a normal user")
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return [runuser, "-u", name, "--"]
    raise RuntimeError("no postgres or nobody user to run PostgreSQL as")


class Postgres:
    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir, self.root = bin_dir, root
        self.data = root / "data"
        self.port = free_port()
        self.prefix = _run_as()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if self.prefix:
            owner = pwd.getpwnam(self.prefix[2])
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *self.prefix,
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = (self.root / "postgres.log").open("ab")
        subprocess.Popen(
            [
                *self.prefix,
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-F",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self._accepts():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        time.sleep(0.3)  # the port opens just before the server accepts logins

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster this fixture started, by its PID."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "postgres.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A running PostgreSQL for the session; skipped where it is not installed or cannot start."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL not installed (no /usr/lib/postgresql/*/bin/initdb)")
    root = Path(tempfile.mkdtemp(prefix="intake-postgres-"))
    server = Postgres(bin_dir, root)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not be started: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres: Postgres) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's PostgreSQL; dropped afterwards."""
    name = f"t_{uuid4().hex[:12]}"
    admin = create_engine(
        postgres.url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
