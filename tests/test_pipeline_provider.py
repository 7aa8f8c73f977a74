from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aura_monitor.clock import SystemClock
from aura_monitor.jobs.model import JobStatus
from aura_monitor.pipeline import FfmpegTools, JobWorkspace, RenderRequest, RunnerSettings, enqueue_job, run_job
from aura_monitor.pipeline.ffmpeg import probe
from aura_monitor.pipeline.provider import OverloadedProvider, SpeechProvider
from aura_monitor.records import read_record
from aura_monitor.reporter import StageError


class VoiceServer:
    """A TTS endpoint that synthesizes a tone with ffmpeg for each sentence, or answers a fixed error."""

    def __init__(self, tools: FfmpegTools, error: int | None = None) -> None:
        self.texts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.texts.append(body["text"])
                if error is not None:
                    self.send_error(error)
                    return
                audio = subprocess.run(
                    [
                        tools.ffmpeg,
                        "-v",
                        "error",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=300:duration=0.4",
                        "-f",
                        "wav",
                        "-",
                    ],
                    capture_output=True,
                    check=True,
                    timeout=30,
                ).stdout
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/v1/synthesize"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def tools() -> FfmpegTools:
    return FfmpegTools.detect()


@pytest.fixture
def voice(tools: FfmpegTools) -> Iterator[VoiceServer]:
    server = VoiceServer(tools)
    yield server
    server.close()


def test_a_job_with_a_remote_tts_provider_narrates_every_sentence_through_it(
    jobs_dir: Path, tools: FfmpegTools, voice: VoiceServer
) -> None:
    enqueue_job(jobs_dir, RenderRequest(duration_s=4, tts_provider_url=voice.url), clock=SystemClock(), job_id="job-1")
    workspace = JobWorkspace.of(jobs_dir, "job-1")

    assert run_job(workspace, clock=SystemClock(), tools=tools, settings=RunnerSettings()) is JobStatus.COMPLETED

    assert len(voice.texts) == 2
    tts = next(stage for stage in read_record(str(workspace.record)).stages if stage.name == "TTS")
    assert [Path(a).name for a in tts.artifacts] == ["narration.wav", "timeline.json", "voice-01.wav", "voice-02.wav"]
    assert probe(workspace.output, tools).duration_s == pytest.approx(4.0, abs=0.1)


def test_a_provider_that_refuses_the_request_fails_at_once(tmp_path: Path, tools: FfmpegTools) -> None:
    refusing = VoiceServer(tools, error=404)
    lines: list[str] = []
    try:
        provider = SpeechProvider(refusing.url, log=lines.append, pause=lambda seconds: None)
        with pytest.raises(StageError, match="HTTP 404") as failure:
            provider.synthesize("hello", tmp_path / "voice.wav")
    finally:
        refusing.close()
    assert failure.value.code == "E502-UPSTREAM_REFUSED"
    assert len(refusing.texts) == 1 and lines == []


def test_an_overloaded_provider_is_retried_with_backoff_and_every_error_is_logged(tmp_path: Path) -> None:
    lines: list[str] = []
    pauses: list[float] = []
    # The stalled answer is released when the provider closes; the client's timeout is long enough that only
    # the stall reaches it (0.2 s let a loaded host's 503 time out too, and the CI run failed on it).
    with OverloadedProvider(stall_s=60.0) as overloaded:
        provider = SpeechProvider(overloaded.url, timeout_s=5.0, max_attempts=4, log=lines.append, pause=pauses.append)
        with pytest.raises(StageError, match="after 4 attempts") as failure:
            provider.synthesize("hello", tmp_path / "voice.wav")

    assert failure.value.code == "E502-UPSTREAM_UNAVAILABLE"
    assert ["429 Too Many" in lines[0], "503 Service Unavailable" in lines[1], "timed out" in lines[2]] == [True] * 3
    assert "429 Too Many" in lines[3] and "giving up" in lines[3]
    assert pauses == [1.0, 0.5, 1.0]  # Retry-After, then exponential backoff
    assert not (tmp_path / "voice.wav").exists()
