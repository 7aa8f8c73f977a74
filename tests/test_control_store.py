"""The retry history's file lock: held across processes, released when its holder dies."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aura_monitor.control import ControlUnavailable
from aura_monitor.control.store import RetryStore

HOLDER = """
import sys
from pathlib import Path
from aura_monitor.control.store import RetryStore
with RetryStore(Path(sys.argv[1])).locked("job"):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize("ending", ["release", "kill"])
def test_the_retry_lock_excludes_another_process_until_it_lets_go_or_dies(jobs_dir: Path, ending: str) -> None:
    (jobs_dir / "job").mkdir()
    store = RetryStore(jobs_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(jobs_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        entered = threading.Event()

        def take() -> None:
            with store.locked("job"):
                entered.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        assert not entered.wait(0.5), "the lock was taken while another process held it"
        if ending == "release":
            holder.communicate("\n", timeout=10)
        else:
            holder.kill()
            holder.wait(timeout=10)
        assert entered.wait(10), f"the lock was not free after its holder's {ending}"
        taker.join(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_the_lock_never_recreates_a_job_dir_that_is_gone(jobs_dir: Path) -> None:
    with (
        pytest.raises(ControlUnavailable, match="cannot lock the retry history of job gone"),
        RetryStore(jobs_dir).locked("gone"),
    ):
        pass
    assert not (jobs_dir / "gone").exists()
