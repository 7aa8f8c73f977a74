"""Control requests between the sidecar and a native worker."""

from __future__ import annotations

from aura_monitor.clock import FakeClock
from aura_monitor.reporter import CancelWatch, ControlAction, JobReporter, acknowledge, read_request, write_request


def test_control_requests_are_written_read_and_acknowledged(reporter: JobReporter, fake_clock: FakeClock) -> None:
    watch = CancelWatch(reporter.job_dir, clock=fake_clock, interval=1.0)
    assert not watch.requested()

    sent = write_request(reporter.job_dir, ControlAction.CANCEL, clock=fake_clock, by="sidecar")
    assert not watch.requested()  # checked less than an interval ago
    fake_clock.advance(1)
    assert watch.requested()

    pending = read_request(reporter.job_dir, ControlAction.CANCEL)
    assert pending is not None
    assert (pending.request_id, pending.by, pending.requested_at) == (sent.request_id, "sidecar", fake_clock.now() - 1)
    acknowledge(pending)
    assert read_request(reporter.job_dir, ControlAction.CANCEL) is None
    assert read_request(reporter.job_dir, ControlAction.RETRY) is None


def test_a_garbled_request_file_still_counts_as_a_request(reporter: JobReporter) -> None:
    (reporter.job_dir / "requests").mkdir()
    (reporter.job_dir / "requests" / "retry.json").write_text("{not json")

    pending = read_request(reporter.job_dir, ControlAction.RETRY)
    assert pending is not None and pending.request_id is None
