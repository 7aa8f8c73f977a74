"""The tracker's indexes: jobs by status, newest first, and the stalled, unreadable and finished ones.

Why: with 100,000 jobs a page of 100, a status count or the active jobs must not cost a pass over every
job. The tracker calls `sync()` after each change of a job (under its lock), which costs O(log n) when the
job's status, recency or finish time moved and a few dict look-ups when they did not.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from .model import JobStatus

if TYPE_CHECKING:  # the tracker owns both JobState and its index
    from .tracker import JobState

Key = tuple[float, str]  # (instant, job id): unique per job, so a removal finds exactly its own entry

_CHUNK = 512  # sorted chunks of 512-1,024 keys: an insert moves at most ~8 KB of pointers, not the whole list


class SortedKeys:
    """A sorted multiset of keys in chunks: O(log n) add and remove, newest-first iteration without a sort."""

    def __init__(self) -> None:
        self._chunks: list[list[Key]] = []
        self._maxes: list[Key] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: Key) -> None:
        self._len += 1
        if not self._chunks:
            self._chunks.append([key])
            self._maxes.append(key)
            return
        i = min(bisect_left(self._maxes, key), len(self._maxes) - 1)
        chunk = self._chunks[i]
        insort(chunk, key)
        self._maxes[i] = chunk[-1]
        if len(chunk) > 2 * _CHUNK:
            self._chunks[i : i + 1] = [chunk[:_CHUNK], chunk[_CHUNK:]]
            self._maxes[i : i + 1] = [chunk[_CHUNK - 1], chunk[-1]]

    def remove(self, key: Key) -> None:
        """Remove `key`, which must be present (the index only removes what it added)."""
        i = bisect_left(self._maxes, key)
        if i == len(self._chunks):
            raise KeyError(key)
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if chunk[j] != key:
            raise KeyError(key)
        del chunk[j]
        self._len -= 1
        if chunk:
            self._maxes[i] = chunk[-1]
        else:
            del self._chunks[i], self._maxes[i]

    def newest(self) -> Iterator[Key]:
        """Keys from the largest down."""
        for chunk in reversed(self._chunks):
            yield from reversed(chunk)


def recency(state: JobState) -> float:
    """Where a job sorts in lists (newest first): created, else queued, else first seen by the sidecar."""
    record = state.record
    if record is None:
        return state.first_seen
    return record.created_at or record.queued_at or state.first_seen


def finished_at(state: JobState) -> float:
    """Where a finished job sorts among finished ones: when it completed (or was created, queued, first seen)."""
    record = state.record
    if record is None:
        return state.first_seen
    return record.completed_at or record.created_at or record.queued_at or state.first_seen


class JobIndex:
    """Job ids by status (newest first), plus the stalled, unreadable and finished (by finish time) sets."""

    def __init__(self) -> None:
        # status None: a job whose record has never been readable (not listed, not counted by status)
        self._by_status: dict[JobStatus | None, SortedKeys] = {s: SortedKeys() for s in (*JobStatus, None)}
        self._entries: dict[str, tuple[JobStatus | None, Key]] = {}
        self._finished = SortedKeys()
        self._finished_keys: dict[str, Key] = {}
        self.stalled: set[str] = set()
        self.unreadable: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def sync(self, state: JobState) -> None:
        """Bring the job's entries up to date with its state (call after every change, under the tracker lock)."""
        job_id = state.id
        status = state.record.status if state.record is not None else None
        key = (recency(state), job_id)
        old = self._entries.get(job_id)
        if old != (status, key):
            if old is not None:
                self._by_status[old[0]].remove(old[1])
            self._by_status[status].add(key)
            self._entries[job_id] = (status, key)
        finished_key = (finished_at(state), job_id) if status is not None and status.terminal else None
        old_finished = self._finished_keys.get(job_id)
        if old_finished != finished_key:
            if old_finished is not None:
                self._finished.remove(old_finished)
                del self._finished_keys[job_id]
            if finished_key is not None:
                self._finished.add(finished_key)
                self._finished_keys[job_id] = finished_key
        _flag(self.stalled, job_id, state.stalled)
        _flag(self.unreadable, job_id, state.unreadable_reported)

    def drop(self, job_id: str) -> None:
        """Forget a removed job."""
        old = self._entries.pop(job_id, None)
        if old is not None:
            self._by_status[old[0]].remove(old[1])
        old_finished = self._finished_keys.pop(job_id, None)
        if old_finished is not None:
            self._finished.remove(old_finished)
        self.stalled.discard(job_id)
        self.unreadable.discard(job_id)

    def counts(self) -> dict[JobStatus, int]:
        """Readable jobs by status (every status present, zeros included)."""
        return {status: len(self._by_status[status]) for status in JobStatus}

    def readable(self) -> int:
        """Jobs with a readable record (what lists show)."""
        return len(self._entries) - len(self._by_status[None])

    def newest(self, statuses: Collection[JobStatus] | None = None) -> Iterator[str]:
        """Ids of readable jobs (of `statuses`, or all), newest first: lazily, so a page reads only its rows."""
        chosen = [self._by_status[s] for s in (statuses if statuses is not None else JobStatus)]
        merged = heapq.merge(*(keys.newest() for keys in chosen if len(keys)), reverse=True)
        return (job_id for _, job_id in merged)

    def newest_stalled(self, statuses: Collection[JobStatus] | None = None) -> list[str]:
        """Ids of stalled readable jobs (of `statuses`, or all), newest first (stalled jobs are few)."""
        picked = [
            entry[1]
            for job_id in self.stalled
            if (entry := self._entries.get(job_id)) is not None
            and entry[0] is not None
            and (statuses is None or entry[0] in statuses)
        ]
        return [job_id for _, job_id in sorted(picked, reverse=True)]

    def active(self) -> Iterator[str]:
        """Ids of every job not in a terminal status, never-readable ones included."""
        for status in (*(s for s in JobStatus if not s.terminal), None):
            yield from (job_id for _, job_id in self._by_status[status].newest())

    def recently_finished(self, limit: int | None) -> list[str]:
        """Ids of the `limit` most recently finished jobs (None: all), most recent first."""
        return [job_id for _, job_id in itertools.islice(self._finished.newest(), limit)]

    def finished(self) -> int:
        return len(self._finished)


def _flag(members: set[str], job_id: str, on: bool) -> None:
    if on:
        members.add(job_id)
    else:
        members.discard(job_id)
