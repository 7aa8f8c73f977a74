"""The output check: MP4 boxes where ffprobe is fooled, and ffprobe itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aura_monitor.diagnosis import media as media_module
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


def test_an_unchanged_output_is_probed_once_and_a_changed_one_again(media: dict[str, Path], tmp_path: Path) -> None:
    output = shutil.copy(media["valid"], tmp_path / "out.mp4")  # a new inode: never probed before
    run, cached = media_module.probes_run, media_module.probes_cached
    first = inspect_output(str(output))
    second = inspect_output(str(output))
    assert (media_module.probes_run - run, media_module.probes_cached - cached) == (1, 1)
    assert second == first and first.probed and first.duration_s
    # Rewritten to the same size and mtime, the file is still a new one to ffprobe (its ctime moved).
    stat = os.stat(output)
    with open(output, "r+b") as handle:
        head = handle.read(16)
        handle.seek(0)
        handle.write(head)  # the same bytes: only the inode's change time says it was written
    os.utime(output, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    inspect_output(str(output))
    assert (media_module.probes_run - run, media_module.probes_cached - cached) == (2, 1)


def test_a_file_ffprobe_rejects_is_not_probed_again_until_it_changes(media: dict[str, Path], tmp_path: Path) -> None:
    output = shutil.copy(media["cut"], tmp_path / "cut.mp4")
    run = media_module.probes_run
    first, second = inspect_output(str(output)), inspect_output(str(output))
    assert media_module.probes_run - run == 1
    assert first.probe_error and second.probe_error == first.probe_error and not second.probed
