from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aura_monitor.clock import FakeClock
from tests.support.aura_writer import AuraJob
from tests.support.live_stack import fresh_data_dir
from tests.support.media import LiveEncoder, render, start_encoder, truncate

pytest_plugins = [
    "tests.support.alerts_live_fixtures",
    "tests.support.board_fixtures",
    "tests.support.reporter_fixtures",
]


def pytest_configure(config: pytest.Config) -> None:
    """No test reads or writes the user's own data dir (~/.local/share): a sidecar started with the plain
    environment keeps its default state in a dir of the session (tests/support/live_stack.fresh_data_dir)."""
    os.environ["XDG_DATA_HOME"] = str(fresh_data_dir())


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sidecar a test starts (and its subprocesses) keeps its incident history in a tmp dir of its own
    (not tmp_path: tests use that as a jobs dir, and a history inside the jobs dir is refused)."""
    history = tmp_path_factory.mktemp("history") / "history.db"
    monkeypatch.setenv("AURA_MONITOR_HISTORY", f"sqlite:///{history}")


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "jobs"
    path.mkdir()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aura_job(jobs_dir: Path) -> Iterator[Callable[..., AuraJob]]:
    def make(**kwargs: object) -> AuraJob:
        return AuraJob(jobs_dir, **kwargs)  # type: ignore[arg-type]

    yield make


# Real media and a live encoder for the diagnosis scenarios (tests/test_diagnosis_*.py).
@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    valid = render(root / "valid.mp4", 2, log=root / "valid.log", progress=root / "valid.progress")
    short = render(root / "short.mp4", 1)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    cut = truncate(render(root / "cut.mp4", 2, faststart=False), 0.5)
    cut_faststart = truncate(render(root / "cut-faststart.mp4", 2), 0.6)
    return {
        "valid": valid,
        "valid_log": root / "valid.log",
        "valid_progress": root / "valid.progress",
        "short": short,
        "empty": empty,
        "cut": cut,
        "cut_faststart": cut_faststart,
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEncoder]:
    encoder = start_encoder(tmp_path_factory.mktemp("live"), "live")
    yield encoder
    encoder.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "Logs" / "ffmpeg").mkdir(parents=True)
    return tmp_path
