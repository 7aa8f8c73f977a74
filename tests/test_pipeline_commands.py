from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import pytest

from aura_monitor.cli.main import main
from aura_monitor.cli.pipeline import register
from aura_monitor.clock import SystemClock
from aura_monitor.pipeline import JobWorkspace
from aura_monitor.pipeline.queue import claim_job
from aura_monitor.records import read_record
from aura_monitor.reporter import JobReporter


def test_the_pipeline_registers_enqueue_render_and_worker_with_a_runner_each() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))

    for argv in (["enqueue"], ["render", "job-1"], ["worker"]):
        assert callable(parser.parse_args(argv).run)


def test_enqueue_prints_the_new_job_id_of_a_queued_native_record(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["enqueue", "--jobs-dir", str(jobs_dir), "--duration", "6", "--width", "640", "--height", "360"]
    assert main([*argv, "--priority", "2", "--fault", "hang-encoder", "--fault-scale", "0.5"]) == 0

    job_id = capsys.readouterr().out.strip()
    assert str(uuid.UUID(job_id)) == job_id
    job = read_record(str(jobs_dir / job_id / "job.json"))
    assert (job.status.value, job.priority, job.expected_duration_s) == ("queued", 2, 6)
    request = JobReporter.load(jobs_dir, job_id, clock=SystemClock()).request
    assert (request["width"], request["height"], request["fault"], request["faultScale"]) == (
        640,
        360,
        "hang-encoder",
        0.5,
    )


def test_enqueue_takes_the_id_it_is_given_and_refuses_it_twice(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enqueue", "--jobs-dir", str(jobs_dir), "--id", "my-job"]) == 0
    assert capsys.readouterr().out.strip() == "my-job"

    assert main(["enqueue", "--jobs-dir", str(jobs_dir), "--id", "my-job"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--width", "321"], "width must be an even number"),
        (["--duration", "0"], "duration must be"),
        (["--id", "../escape"], "invalid job id"),
    ],
)
def test_enqueue_rejects_bad_input_with_one_line(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["enqueue", "--jobs-dir", str(jobs_dir), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert list(jobs_dir.iterdir()) == []


def test_render_refuses_an_unknown_a_finished_or_a_claimed_job(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "nope", "--jobs-dir", str(jobs_dir)]) == 1
    assert "no job nope" in capsys.readouterr().err

    JobReporter.create(jobs_dir, "done", clock=SystemClock()).complete()
    assert main(["render", "done", "--jobs-dir", str(jobs_dir)]) == 1
    assert "only a queued job can be rendered" in capsys.readouterr().err

    JobReporter.create(jobs_dir, "taken", clock=SystemClock())
    assert claim_job(JobWorkspace.of(jobs_dir, "taken"), owner_pid=1, clock=SystemClock()) is not None
    assert main(["render", "taken", "--jobs-dir", str(jobs_dir)]) == 1
    assert "claimed by another worker" in capsys.readouterr().err
    assert main(["render", "taken", "--jobs-dir", str(jobs_dir), "--claim", "forged"]) == 1
    assert "not claimed with the given token" in capsys.readouterr().err


def test_worker_rejects_a_concurrency_below_one(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--jobs-dir", str(jobs_dir), "--concurrency", "0"]) == 2
    assert "--concurrency must be at least 1" in capsys.readouterr().err
