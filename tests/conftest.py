from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aura_monitor.aura_writer import AuraJob
from aura_monitor.clock import FakeClock


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
