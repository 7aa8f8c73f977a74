from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import ffmpeg
import pytest

from aura_monitor.pipeline import FfmpegTools
from aura_monitor.pipeline.ffmpeg import Encoder, ProgressReader, lavfi_source, probe
from tests.support import HANG_S, wait_for
from tests.support.pipeline import out_time, process_state


@pytest.fixture(scope="module")
def tools() -> FfmpegTools:
    return FfmpegTools.detect()


def test_the_progress_reader_returns_complete_blocks_as_ffmpeg_appends_them(tmp_path: Path) -> None:
    path = tmp_path / "render.progress"
    reader = ProgressReader(path)
    assert reader.poll() is None  # not created yet

    path.write_text("frame=10\nout_time_us=N/A\nout_time_ms=1500000\nspeed=   1.5x\nprogress=continue\nframe=2")
    first = reader.poll()
    with open(path, "a") as fh:
        fh.write("0\nout_time_us=2000000\nspeed=N/A\ntotal_size=N/A\nprogress=end\n")
    last = reader.poll()

    assert first is not None and (first.out_time_s, first.speed, first.frame, first.ended) == (1.5, 1.5, 10, False)
    assert last is not None and (last.out_time_s, last.speed, last.frame, last.ended) == (2.0, None, 20, True)
    assert reader.poll() is None
    path.write_text("out_time=00:01:02.500000\nprogress=continue\n")  # a new ffmpeg rewrote the file
    again = reader.poll()
    assert again is not None and again.out_time_s == 62.5


def test_lavfi_sources_survive_paths_full_of_filtergraph_syntax(tmp_path: Path, tools: FfmpegTools) -> None:
    folder = tmp_path / "it's [odd], a:dir; really"
    folder.mkdir()
    tone = folder / "tone.wav"
    subprocess.run(
        [tools.ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(tone)], check=True, timeout=30
    )

    copied = subprocess.run(
        [
            tools.ffmpeg,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            lavfi_source("amovie", filename=tone),
            str(tmp_path / "o.wav"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert copied.returncode == 0, copied.stderr
    assert probe(tmp_path / "o.wav", tools).duration_s == pytest.approx(0.3, abs=0.05)


def long_encode(tmp_path: Path, tools: FfmpegTools) -> Encoder:
    args = (
        ffmpeg.input("testsrc2=size=160x90:rate=10:duration=60", f="lavfi", re=None)
        .output(str(tmp_path / "long.mp4"), vcodec="libx264", preset="ultrafast")
        .overwrite_output()
        .compile(cmd=tools.ffmpeg)
    )
    encoder = Encoder(args, progress_path=tmp_path / "long.progress", log_path=tmp_path / "long.log")
    encoder.start()
    wait_for(lambda: (out_time(encoder.progress_path) or 0) > 0.3, what="ffmpeg to encode")
    return encoder


def test_stopping_an_encoder_asks_ffmpeg_to_quit_and_it_closes_the_file(tmp_path: Path, tools: FfmpegTools) -> None:
    encoder = long_encode(tmp_path, tools)

    code = encoder.stop(grace=10)

    assert code == 0
    assert 0.3 <= probe(tmp_path / "long.mp4", tools).duration_s < 30
    assert "muxing overhead" in (encoder.stderr_tail() or "")


def test_an_encoder_that_cannot_answer_is_killed_after_the_grace_period(tmp_path: Path, tools: FfmpegTools) -> None:
    encoder = long_encode(tmp_path, tools)
    os.kill(encoder.pid, signal.SIGSTOP)
    began = time.monotonic()

    code = encoder.stop(grace=0.5)

    assert code == -signal.SIGKILL
    # It waited out the grace before the kill; the ceiling is for a kill that never came (a stopped ffmpeg
    # waits forever), not a speed bound.
    assert 0.5 <= time.monotonic() - began < HANG_S
    assert process_state(encoder.pid) is None


def test_the_tools_know_the_filters_and_a_font(tools: FfmpegTools) -> None:
    assert tools.has("concat") and tools.has("drawtext") and not tools.has("no-such-filter")
    assert tools.font is None or tools.font.suffix == ".ttf"
