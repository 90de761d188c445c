"""PostgreSQL for the archive's tests: a fresh database on the shared server, or a
private server of our own that a test may stop and start.

The shared server (127.0.0.1:5432, trust, user postgres) is never restarted: a test
that needs PostgreSQL to go away starts a `PrivateServer` (initdb + pg_ctl on a free
port, its data and socket in a tmp dir) and stops it itself. PostgreSQL refuses to run
as root, so when we are root the server and its files belong to the `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHARED_SERVER = "postgresql://postgres@127.0.0.1:5432"
SERVER_USER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unique_database_name(prefix: str = "chat_archive_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def create_database(server: str = SHARED_SERVER) -> str:
    """A new, empty, uniquely named database on `server`; returns its URL."""
    name = unique_database_name()
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server}/{name}"


async def drop_database(url: str) -> None:
    """Drop the database at `url`, closing its connections first, so that a test that
    leaked one does not keep it."""
    server, _, name = url.rpartition("/")
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server: str = SHARED_SERVER) -> AsyncIterator[str]:
    """A new, empty database on `server`, dropped afterwards; yields its URL."""
    url = await create_database(server)
    try:
        yield url
    finally:
        await drop_database(url)


class PrivateServer:
    """One private PostgreSQL 15 server: `start()`, `stop()` (fast shutdown), `crash()`
    (immediate shutdown, like a kill), `start()` again on the same data, `destroy()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="chat-archive-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sockets"
        self.log = self.base / "server.log"
        self._as_root = os.geteuid() == 0
        self._prepare()

    @property
    def url(self) -> str:
        """The server, without a database: add `/name`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        self.sockets.mkdir()
        if self._as_root:
            owner = pwd.getpwnam(SERVER_USER)
            for path in (self.base, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",  # a test server: a power cut loses nothing we keep
        )

    def _run(self, program: str, *args: str) -> None:
        owner = pwd.getpwnam(SERVER_USER) if self._as_root else None
        result = subprocess.run(
            [str(PG_BIN / program), *args],
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=120,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> None:
        """Start (or start again on the same data) and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected, the server comes back clean."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def crash(self) -> None:
        """An immediate shutdown: every process quits without a checkpoint, as after a
        kill; the next start recovers from the write-ahead log."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def wait_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.1)

    def destroy(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.crash()
        shutil.rmtree(self.base, ignore_errors=True)
