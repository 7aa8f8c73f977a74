"""The worker: takes queued native jobs by priority and runs each in its own `render` process.

`step()` does one round (reap finished children, honour control requests, start jobs in free slots)
and says whether it did anything; `run()` repeats it until told to stop. A child killed by a fault
kills only its own job; the worker then leaves the record as the crash left it (that is evidence).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..clock import Clock
from ..exceptions import AuraMonitorError, RecordError
from ..jobs.model import JobRecord, JobStatus
from ..records import read_record
from ..reporter import REQUESTS_DIR, ControlAction, JobReporter, Outcome, PipelineMetrics, read_request, request_age
from .control import Decision, end_cancelled, honour, pending_requests
from .encoding import describe_exit
from .ffmpeg import last_progress
from .queue import Claim, claim_job, native_records, queued_jobs
from .workspace import JobWorkspace, default_output_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Where the jobs are and how the worker behaves."""

    jobs_dir: Path
    output_dir: Path | None = None
    concurrency: int = 1
    poll_interval_s: float = 0.2
    stop_grace_s: float = 5.0
    cancel_escalation_s: float = 15.0
    python: str = sys.executable

    @property
    def resolved_output_dir(self) -> Path:
        return self.output_dir or default_output_dir(self.jobs_dir)


@dataclass(slots=True)
class _Child:
    workspace: JobWorkspace
    process: subprocess.Popen[bytes]
    claim: Claim
    started_at: float
    attempt: int


class WorkerMetrics:
    """The worker's own series, beside the pipeline's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.running = Gauge(
            "aura_pipeline_worker_jobs_running", "Render processes this worker runs now.", registry=registry
        )
        self.started = Counter(
            "aura_pipeline_worker_jobs_started", "Render processes this worker started.", registry=registry
        )
        self.requests = Counter(
            "aura_pipeline_worker_control_requests",
            "Control requests the worker acted on, by action and decision.",
            ["action", "decision"],
            registry=registry,
        )


class Worker:
    """Runs up to `concurrency` jobs at once, each as `python -m aura_monitor render JOB_ID`."""

    def __init__(self, settings: WorkerSettings, *, clock: Clock, registry: CollectorRegistry) -> None:
        self.settings = settings
        self._clock = clock
        self.metrics = PipelineMetrics(registry)
        self._own = WorkerMetrics(registry)
        self._children: dict[str, _Child] = {}
        self._stopping = False

    @property
    def running_jobs(self) -> list[str]:
        return sorted(self._children)

    def workspace(self, job_id: str) -> JobWorkspace:
        return JobWorkspace.of(self.settings.jobs_dir, job_id, self.settings.resolved_output_dir)

    def step(self) -> bool:
        """One round of work; True when anything happened."""
        did = self._reap()
        records = native_records(self.settings.jobs_dir)
        if self._honour_requests(records) | self._escalate_cancels():
            did = True
            records = native_records(self.settings.jobs_dir)  # requests changed some of them
        return self._fill_slots(records) or did

    def run(self, stop: threading.Event, *, exit_when_idle: bool = False) -> None:
        """Work until `stop` is set (or, with `exit_when_idle`, until nothing is queued or running)."""
        try:
            while not stop.is_set():
                did = self.step()
                if exit_when_idle and not did and not self._children and not self._has_queued():
                    return
                stop.wait(self.settings.poll_interval_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop every child: SIGTERM (the job ends failed, retryable), SIGKILL after the grace period."""
        self._stopping = True
        for child in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        for job_id, child in list(self._children.items()):
            try:
                child.process.wait(self.settings.stop_grace_s + 2)
            except subprocess.TimeoutExpired:
                self._kill_group(child)
            self._finish(job_id)

    # -- one round -----------------------------------------------------------------------------------

    def _reap(self) -> bool:
        finished = [job_id for job_id, child in self._children.items() if child.process.poll() is not None]
        for job_id in finished:
            self._finish(job_id)
        return bool(finished)

    def _finish(self, job_id: str) -> None:
        child = self._children.pop(job_id)
        code = child.process.wait()
        child.claim.release()
        self._own.running.set(len(self._children))
        try:
            record = read_record(str(child.workspace.record))
        except RecordError as exc:
            log.warning("job %s: render process ended (%s) and its record is unreadable: %s", job_id, code, exc)
            return
        if record.status is JobStatus.QUEUED and record.attempt == child.attempt and not self._stopping:
            try:
                record = self._never_started(child, code)
            except (AuraMonitorError, OSError) as exc:
                log.warning("job %s: render process exited (%s) before starting it: %s", job_id, code, exc)
                return
        outcome = _outcome(record, code)
        log.info("job %s: render process exited with %s; outcome %s", job_id, code, outcome.value)
        self.metrics.observe_job(outcome)
        self._observe_stages(child, record)

    def _never_started(self, child: _Child, code: int) -> JobRecord:
        """The render process exited before taking the job (bad install, refused claim): fail the job
        with what the process said, instead of starting it again on every round."""
        said = ""
        with contextlib.suppress(OSError):
            lines = child.workspace.process_log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            said = lines[-1] if lines else ""
        reporter = JobReporter.load(self.settings.jobs_dir, child.workspace.job_id, clock=self._clock)
        reporter.fail(
            "E500-WORKER",
            f"the render process exited ({describe_exit(code)}) without starting the job: {said or 'no output'}",
            stage="Queued",
        )
        return read_record(str(child.workspace.record))

    def _observe_stages(self, child: _Child, record: JobRecord) -> None:
        """Stage metrics of this attempt, from the record it left (the child has no registry we can see)."""
        for stage in record.stages:
            if stage.started_at is None or stage.started_at < child.started_at - 1:
                continue  # an earlier attempt's stage
            outcome = _STAGE_OUTCOMES.get(stage.status, Outcome.CANCELLED)
            seconds = stage.completed_at - stage.started_at if stage.completed_at is not None else None
            self.metrics.observe_stage(stage.name, outcome, seconds)
            if stage.name == "Render" and outcome is Outcome.COMPLETED:
                sample = last_progress(child.workspace.encoder_progress("Render"))
                if sample is not None and sample.speed is not None:
                    self.metrics.observe_render_speed(sample.speed)

    def _honour_requests(self, records: list[JobRecord]) -> bool:
        did = False
        for record in records:
            workspace = self.workspace(record.id)
            if not (workspace.job_dir / REQUESTS_DIR).is_dir():
                continue
            for request in pending_requests(workspace):
                if record.id in self._children and request.action is ControlAction.CANCEL:
                    continue  # our own child honours it; _escalate_cancels watches that it does
                try:
                    handled = honour(workspace, request, clock=self._clock, owner_pid=os.getpid())
                except (AuraMonitorError, OSError) as exc:
                    log.warning("job %s: cannot act on its %s request yet: %s", record.id, request.action.value, exc)
                    continue
                if handled.decision not in (Decision.LEFT_TO_PROCESS, Decision.DEFERRED):
                    did = True
                    self._own.requests.labels(action=request.action.value, decision=handled.decision.value).inc()
                    log.info(
                        "job %s: %s request %s (%s)",
                        record.id,
                        request.action.value,
                        handled.decision.value,
                        handled.detail,
                    )
        return did

    def _escalate_cancels(self) -> bool:
        """A child that ignores its cancel request (blocked, hung) is killed and the job ended here."""
        did = False
        for job_id, child in list(self._children.items()):
            request = read_request(child.workspace.job_dir, ControlAction.CANCEL)
            if request is None or request_age(request, self._clock) < self.settings.cancel_escalation_s:
                continue
            log.warning(
                "job %s: render process ignored a cancel for %.0f s; killing it",
                job_id,
                request_age(request, self._clock),
            )
            self._kill_group(child)
            try:
                end_cancelled(
                    child.workspace,
                    clock=self._clock,
                    message="cancelled; the render process did not respond and was killed",
                )
            except (AuraMonitorError, OSError) as exc:
                log.warning("job %s: killed, but its record could not be ended cancelled: %s", job_id, exc)
            self._finish(job_id)
            request.path.unlink(missing_ok=True)
            self._own.requests.labels(action="cancel", decision="killed").inc()
            did = True
        return did

    def _fill_slots(self, records: list[JobRecord]) -> bool:
        free = self.settings.concurrency - len(self._children)
        if free <= 0:
            return False
        started = 0
        for entry in queued_jobs(records):
            if started >= free:
                break
            if entry.job_id in self._children:
                continue
            workspace = self.workspace(entry.job_id)
            if read_request(workspace.job_dir, ControlAction.CANCEL) is not None:
                continue  # cancelled before it starts, by _honour_requests
            claim = claim_job(workspace, owner_pid=os.getpid(), clock=self._clock)
            if claim is None:
                continue
            self._spawn(workspace, claim, next(r.attempt for r in records if r.id == entry.job_id))
            started += 1
        return started > 0

    def _has_queued(self) -> bool:
        return bool(queued_jobs(native_records(self.settings.jobs_dir)))

    # -- children ------------------------------------------------------------------------------------

    def _spawn(self, workspace: JobWorkspace, claim: Claim, attempt: int) -> None:
        settings = self.settings
        workspace.logs_dir.mkdir(exist_ok=True)
        command = [
            settings.python, "-m", "aura_monitor", "render", workspace.job_id,
            "--jobs-dir", str(settings.jobs_dir),
            "--output-dir", str(settings.resolved_output_dir),
            "--claim", claim.token,
            "--stop-grace", f"{settings.stop_grace_s:g}",
        ]  # fmt: skip
        with open(workspace.process_log, "ab") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._children[workspace.job_id] = _Child(workspace, process, claim, self._clock.now(), attempt)
        self._own.started.inc()
        self._own.running.set(len(self._children))
        log.info("job %s: started render process %d", workspace.job_id, process.pid)

    def _kill_group(self, child: _Child) -> None:
        """SIGKILL the child's whole session (it and its ffmpeg), then reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(5)


# A stage left `running` died with its process; `pending` with a start time was cancelled.
_STAGE_OUTCOMES = {"completed": Outcome.COMPLETED, "failed": Outcome.FAILED, "running": Outcome.CRASHED}


def _outcome(record: JobRecord, exit_code: int) -> Outcome:
    if record.status is JobStatus.COMPLETED:
        return Outcome.COMPLETED
    if record.status is JobStatus.FAILED:
        return Outcome.FAILED
    if record.status is JobStatus.CANCELLED:
        return Outcome.CANCELLED
    return Outcome.CRASHED if exit_code < 0 else Outcome.UNFINISHED
