"""Supervising one ffmpeg run inside a stage: progress to the record, cancel, heartbeats, hang bound."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..reporter import StageError
from .context import StageContext
from .ffmpeg import Encoder, ProgressSample

SampleHandler = Callable[[Encoder, ProgressSample], None]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_encoder(
    ctx: StageContext,
    args: Sequence[str],
    *,
    output: Path | None = None,
    on_sample: SampleHandler | None = None,
    pipe_stderr: bool = False,
    sync: bool = True,
) -> Encoder:
    """Run ffmpeg to the end and return it; StageError when it fails, hangs past the bound or is stopped.

    With `sync` off, the run is awaited without reading its progress, heartbeating or checking for
    cancel: what a pipeline whose progress callback was never attached does (no-progress-sync).
    """
    workspace, stage = ctx.workspace, ctx.stage.name
    encoder = Encoder(
        args,
        progress_path=workspace.encoder_progress(stage),
        log_path=workspace.encoder_log(stage),
        pipe_stderr=pipe_stderr,
    )
    encoder.start()
    ctx.reporter.set_encoder(
        encoder.pid, progress_path=encoder.progress_path, log_path=encoder.log_path, output_path=output
    )
    try:
        code = _supervise(ctx, encoder, on_sample) if sync else _await_unsynced(ctx, encoder)
    except BaseException:
        if encoder.poll() is None:
            encoder.stop(ctx.settings.stop_grace_s)
        raise
    if code != 0:
        raise StageError(
            f"ffmpeg failed during {stage} ({describe_exit(code)})",
            code="E304-FFMPEG_RUNTIME",
            stderr_tail=encoder.stderr_tail(),
        )
    final = encoder.reader.poll()
    if final is not None and on_sample is not None and sync:
        on_sample(encoder, final)
    return encoder


def _supervise(ctx: StageContext, encoder: Encoder, on_sample: SampleHandler | None) -> int:
    settings = ctx.settings
    last_change = time.monotonic()
    last_out_time: float | None = None
    while True:
        code = encoder.poll()
        sample = encoder.reader.poll()
        if sample is not None:
            if sample.out_time_s != last_out_time:
                last_out_time, last_change = sample.out_time_s, time.monotonic()
            if on_sample is not None:
                on_sample(encoder, sample)
        if code is not None:
            return code
        ctx.check_cancelled()
        ctx.keep_alive()
        if time.monotonic() - last_change > settings.max_hang_s:
            encoder.kill()
            raise StageError(
                f"ffmpeg made no progress for {settings.max_hang_s:g} s during {ctx.stage.name}; killed",
                code="E305-JOB_STALLED",
                stderr_tail=encoder.stderr_tail(),
            )
        time.sleep(settings.poll_interval_s)


def _await_unsynced(ctx: StageContext, encoder: Encoder) -> int:
    try:
        return encoder.wait(timeout=ctx.settings.max_hang_s)
    except subprocess.TimeoutExpired:
        encoder.kill()
        raise StageError(
            f"ffmpeg did not finish within {ctx.settings.max_hang_s:g} s", code="E305-JOB_STALLED"
        ) from None
