"""A throw-away PostgreSQL cluster from Debian's `postgresql` package: initdb on a temp dir, pg_ctl on a free port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support import STARTUP_S
from tests.support.live_stack import free_port


def _version(initdb: str) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin/initdb, (9, 6) for an old 9.6: sorted as numbers, not text."""
    return tuple(int(part) for part in Path(initdb).parts[-3].split(".") if part.isdigit())


def postgres_bin_dir() -> Path:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin (off PATH): the newest installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    on_path = shutil.which("initdb")
    if found:
        return Path(found[-1]).parent
    if on_path:
        return Path(on_path).parent
    pytest.fail("initdb is not installed: install the Debian package postgresql (make system-deps)")


class PostgresCluster:
    """One cluster in a temp dir, trust auth for the user `aura`; `stop()` and `start()` again keep its data."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="aura-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        # initdb refuses to run as root: as root, the cluster belongs to the postgres user the package made.
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://aura@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bin / tool), *args], capture_output=True, text=True, timeout=STARTUP_S, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}{log}")

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", "aura", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def close(self) -> None:
        """Stop the server if it runs and remove the cluster."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except (AssertionError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
