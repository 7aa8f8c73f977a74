"""`python -m aura_monitor ...` as a real subprocess: piped (not a terminal) or under a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass
from typing import IO

from tests.support import STARTUP_S

AURA = [sys.executable, "-m", "aura_monitor"]


def piped_env(**extra: str) -> dict[str, str]:
    """The environment of a pipe (a CI step, `| grep`): no COLUMNS, so nothing tells rich a width."""
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    return env | extra


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


@dataclass
class Done:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout without colour and cursor sequences (what a person reads on the terminal)."""
        return _ANSI.sub("", self.out).replace("\r\n", "\n")


def run_piped(*args: str, timeout: float = STARTUP_S) -> Done:
    done = subprocess.run([*AURA, *args], capture_output=True, text=True, timeout=timeout, env=piped_env())
    return Done(done.returncode, done.stdout, done.stderr)


def run_in_pty(*args: str, columns: int = 160, timeout: float = STARTUP_S) -> Done:
    """The command with stdin/stdout on a pseudo-terminal of `columns` columns (stderr piped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = piped_env(TERM="xterm-256color")
    process = subprocess.Popen([*AURA, *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        code = process.wait(max(0.1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    err = process.stderr.read().decode()
    process.stderr.close()
    return Done(code, b"".join(chunks).decode("utf-8", "replace"), err)


class Running:
    """A long-running command (serve, watch, worker), its stdout and stderr read line by line as they come."""

    def __init__(self, *args: str, start_new_session: bool = False) -> None:
        self.process = subprocess.Popen(
            [*AURA, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=piped_env(),
            start_new_session=start_new_session,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(name, stream), daemon=True)
            for name, stream in (("out", self.process.stdout), ("err", self.process.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\n")))

    def _drain(self, wait: float) -> None:
        try:
            name, line = self._lines.get(timeout=wait)
        except queue.Empty:
            return
        (self.out if name == "out" else self.err).append(line)

    def expect(self, text: str, stream: str = "out", timeout: float = STARTUP_S) -> str:
        """The first line of `stream` holding `text` (waiting for it with a deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.out if stream == "out" else self.err
            found = next((line for line in lines if text in line), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"never printed {text!r} on std{stream}; out={self.out} err={self.err}")
            self._drain(0.05)

    def wait(self, timeout: float = STARTUP_S) -> int:
        """The exit code, once every line the process wrote has been read."""
        code = self.process.wait(timeout)
        for pump in self._pumps:
            pump.join(timeout=5)  # they end at EOF, which follows the exit (unless a child holds the pipe)
        while not self._lines.empty():
            self._drain(0)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
