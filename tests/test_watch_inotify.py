"""The job-dir watches on watchdog's inotify layer: the watchdog internals they rely on, and real inotify."""

from __future__ import annotations

import inspect
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers import inotify_c
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD, Watch, WatchDescriptor
from watchdog.observers.polling import PollingObserverVFS
from watchdog.utils.dirsnapshot import DirectorySnapshot

from aura_monitor.watch.inotify import JobDirWatches, JobInotifyFD
from aura_monitor.watch.watcher import _Named
from tests.support import wait_for

RECORD = "job.json"


class Calls:
    """What the watches told the watcher, and on which thread."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.threads: set[str] = set()
        self.root_lost = 0
        self.overflows = 0

    def sink(self, path: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.paths.append(path)

    def lose_root(self) -> None:
        self.root_lost += 1

    def overflow(self) -> None:
        self.overflows += 1


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def watches(tmp_path: Path, calls: Calls) -> Iterator[JobDirWatches]:
    w = JobDirWatches(str(tmp_path), str(tmp_path), RECORD, calls.sink, calls.lose_root, calls.overflow)
    yield w
    w.close()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- the watchdog internals in use (watchdog>=7.1,<8): these fail if a release moves or changes them ------


def test_watchdog_inotify_layer_keeps_the_names_and_signatures_the_watches_use() -> None:
    params = inspect.signature(InotifyFD._get_or_create_watch).parameters
    assert list(params) == ["self", "path", "mask"]
    assert list(inspect.signature(InotifyFD.remove_callbacks).parameters) == ["self", "callbacks"]
    assert list(inspect.signature(InotifyFD.handle_event).parameters) == ["self", "event"]
    assert list(inspect.signature(InotifyFD.__init__).parameters) == ["self"]
    assert list(inspect.signature(InotifyFD.read_events).parameters) == ["self", "event_buffer_size"]
    assert list(inspect.signature(InotifyFD._read_event_buffer).parameters) == ["self", "event_buffer_size"]
    assert list(inspect.signature(InotifyFD._parse_event_buffer).parameters) == ["event_buffer"]
    assert isinstance(inotify_c.DEFAULT_EVENT_BUFFER_SIZE, int)
    assert {"on_event", "on_watch_deleted", "on_queue_overflow"} <= set(dir(inotify_c.WatchCallback))
    assert [f for f in InotifyEvent.__dataclass_fields__] == ["wd", "mask", "cookie", "name"]
    assert "callbacks" in Watch.__dataclass_fields__
    fd = JobInotifyFD()  # the private attributes exist on a fresh instance
    try:
        assert isinstance(fd._lock, type(threading.Lock())) and fd._watch_for_wd == {}
        assert isinstance(fd._inotify_fd, int) and not os.get_inheritable(fd._inotify_fd)
    finally:
        fd.start()
        fd.stop()
        fd.join(2)


def test_watchdog_inotify_constants_are_the_kernel_values_from_inotify_7() -> None:
    kernel = {
        "IN_CLOSE_WRITE": 0x8,
        "IN_MOVED_FROM": 0x40,
        "IN_MOVED_TO": 0x80,
        "IN_CREATE": 0x100,
        "IN_DELETE": 0x200,
        "IN_DELETE_SELF": 0x400,
        "IN_MOVE_SELF": 0x800,
        "IN_UNMOUNT": 0x2000,
        "IN_Q_OVERFLOW": 0x4000,
        "IN_IGNORED": 0x8000,
        "IN_ONLYDIR": 0x01000000,
        "IN_DONT_FOLLOW": 0x02000000,
        "IN_ISDIR": 0x40000000,
    }
    assert {name: getattr(InotifyConstants, name) for name in kernel} == kernel


def test_watchdog_polling_observer_takes_a_stat_a_listdir_and_an_interval() -> None:
    params = inspect.signature(PollingObserverVFS.__init__).parameters
    assert list(params)[1:] == ["stat", "listdir", "polling_interval"]


def test_watchdog_snapshots_read_only_the_name_of_a_listed_entry(tmp_path: Path) -> None:
    job = tmp_path / "a"
    job.mkdir()
    (job / RECORD).write_text("{}")
    (job / "frames").mkdir()  # never listed: the record is named without listing its dir

    def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
        return iter([_Named("a")] if path == str(tmp_path) else [_Named(RECORD)])  # type: ignore[list-item]

    snapshot = DirectorySnapshot(str(tmp_path), listdir=listdir)
    assert snapshot.paths == {str(tmp_path), str(job), str(job / RECORD)}


# -- behaviour on real inotify ------------------------------------------------------------------------


def test_record_events_reach_the_sink_on_the_one_reader_thread(
    watches: JobDirWatches, calls: Calls, tmp_path: Path
) -> None:
    (tmp_path / "j1").mkdir()
    wait_for(lambda: str(tmp_path / "j1" / RECORD) in calls.paths, what="the new job dir named")
    tmp = tmp_path / "j1" / "job.json.tmp"
    tmp.write_text("{}")
    os.replace(tmp, tmp_path / "j1" / RECORD)
    wait_for(lambda: calls.paths.count(str(tmp_path / "j1" / RECORD)) >= 2, what="the atomic write")
    assert calls.threads == {"aura-inotify"}
    assert all(os.path.basename(p) == RECORD for p in calls.paths)  # the temp file was dropped


def test_only_dir_nameless_and_record_events_become_watchdog_events(tmp_path: Path) -> None:
    fd = JobInotifyFD(RECORD.encode())  # not started: this test reads the queue itself
    try:
        mask = InotifyConstants.IN_CREATE | InotifyConstants.IN_CLOSE_WRITE | InotifyConstants.IN_MOVED_TO
        fd.watch(str(tmp_path), mask, _Ignore())
        tmp = tmp_path / "job.json.tmp"
        tmp.write_text("{}")
        os.replace(tmp, tmp_path / RECORD)
        (tmp_path / "sub").mkdir()
        events = fd.read_events()
        assert [(e.name, bool(e.is_directory)) for e in events] == [(RECORD.encode(), False), (b"sub", True)]
    finally:
        fd.start()
        fd.stop()
        fd.join(2)


def test_watching_a_watched_dir_again_keeps_its_descriptor_and_warns_nothing(
    watches: JobDirWatches, tmp_path: Path
) -> None:
    (tmp_path / "j2").mkdir()
    watches.ensure(["j2"])
    count = watches.watch_count
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # watchdog's add_callback would warn "Callback with id ... already exists"
        watches.ensure(["j2"], refresh=True)
    assert watches.watch_count == count == 2


def test_a_refused_watch_raises_with_its_errno_and_leaves_nothing_in_watchdogs_table(tmp_path: Path) -> None:
    fd = JobInotifyFD()
    fd.start()
    try:
        with pytest.raises(FileNotFoundError) as caught:
            fd.watch(str(tmp_path / "missing"), InotifyConstants.IN_CREATE, _Ignore())
        assert str(tmp_path / "missing") in str(caught.value)
        (tmp_path / "file").write_text("")
        with pytest.raises(NotADirectoryError):
            fd.watch(str(tmp_path / "file"), InotifyConstants.IN_CREATE | InotifyConstants.IN_ONLYDIR, _Ignore())
        assert fd._watch_for_wd == {}
    finally:
        fd.stop()
        fd.join(2)


def test_a_deleted_job_dir_loses_its_watch_through_watchdogs_in_ignored(
    watches: JobDirWatches, calls: Calls, tmp_path: Path
) -> None:
    (tmp_path / "j3").mkdir()
    wait_for(lambda: watches.watch_count == 2, what="the job dir's watch")
    (tmp_path / "j3").rmdir()
    wait_for(lambda: watches.watch_count == 1, what="the watch dropped on IN_IGNORED")
    assert calls.root_lost == 0 and watches.inotify._watch_for_wd.keys() == {*watches._by_wd}


def test_the_jobs_dir_deleted_is_reported_as_lost(tmp_path: Path, calls: Calls) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    w = JobDirWatches(str(root), str(root), RECORD, calls.sink, calls.lose_root, calls.overflow)
    try:
        root.rmdir()
        wait_for(lambda: calls.root_lost >= 1, what="the jobs dir reported lost")
    finally:
        w.close()


def test_a_queue_overflow_is_reported_once_through_watchdogs_reader(
    watches: JobDirWatches, calls: Calls, tmp_path: Path
) -> None:
    (tmp_path / "j4").mkdir()
    watches.ensure(["j4"])
    overflow = InotifyEvent(WatchDescriptor(-1), InotifyConstants.IN_Q_OVERFLOW, 0, b"")
    watches.inotify.handle_event(overflow)  # one callback object on two watches: one report
    assert calls.overflows == 1


def test_closing_ends_the_reader_frees_its_descriptors_and_reports_no_lost_root(tmp_path: Path, calls: Calls) -> None:
    before = open_fds()
    w = JobDirWatches(str(tmp_path), str(tmp_path), RECORD, calls.sink, calls.lose_root, calls.overflow)
    (tmp_path / "j5").mkdir()
    w.ensure(["j5"])
    w.close()
    assert not w.alive
    wait_for(lambda: open_fds() <= before, what="inotify fd and kill pipe closed")
    assert calls.root_lost == 0


class _Ignore:
    """A WatchCallback that ignores everything."""

    def on_event(self, event: InotifyEvent) -> None:
        pass

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        pass

    def on_queue_overflow(self) -> None:
        pass
