"""The output check: MP4 boxes where ffprobe is fooled, and ffprobe itself."""

from __future__ import annotations

from pathlib import Path

from aura_monitor.diagnosis.media import inspect_output, mp4_truncation


def test_ffprobe_accepts_a_truncated_faststart_file_but_the_box_check_does_not(media: dict[str, Path]) -> None:
    evidence = inspect_output(str(media["cut_faststart"]))
    assert evidence.probed and evidence.duration_s and evidence.duration_s > 1.5  # ffprobe is fooled
    assert evidence.truncated and "bytes missing" in evidence.truncated
    assert mp4_truncation(str(media["valid"]), media["valid"].stat().st_size) is None


def test_a_truncated_file_without_faststart_has_no_index(media: dict[str, Path]) -> None:
    evidence = inspect_output(str(media["cut"]))
    assert not evidence.probed and evidence.probe_error
    assert evidence.truncated
