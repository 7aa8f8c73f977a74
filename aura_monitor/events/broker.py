"""Fan-out of the tracker's transitions to SSE streams: numbering, replay buffers, snapshots, subscribers."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..jobs.model import JobStatus
from ..jobs.tracker import JobState, Tracker
from ..jobs.transitions import Transition, TransitionKind
from .model import Event, EventId, EventName, encode
from .subscriber import Ending, StreamKind, Subscriber
from .translate import Linking, events_for, frozen, job_snapshot, terminal_event

# `links` too: six URLs per terminal event, rebuilt from the job id when a terminal event is sent again.
_FRAME_ONLY = frozenset({"job", "steps", "links"})


class JobLog:
    """The recent events of one job, progress coalesced to the latest; outlives the shared log's horizon."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.events: OrderedDict[object, Event] = OrderedDict()
        self.evicted_through = 0
        self.terminal: Event | None = None

    def add(self, event: Event) -> None:
        key: object = event.n
        if event.name is EventName.STEP_PROGRESS:
            key = EventName.STEP_PROGRESS
            self.events.pop(key, None)  # superseded, not lost: the newer one carries the current percent
        self.events[key] = event
        while len(self.events) > self.limit:
            _, old = self.events.popitem(last=False)
            self.evicted_through = max(self.evicted_through, old.n)
        if event.terminal:
            self.terminal = event
        elif event.name is EventName.JOB_STATUS and not JobStatus(event.data["status"]).terminal:
            self.terminal = None  # retried: the job runs again

    def after(self, n: int) -> list[Event]:
        return [event for event in self.events.values() if event.n > n]


@dataclass(slots=True)
class Opening:
    """What a new stream starts with, captured atomically with its registration."""

    kind: StreamKind
    job_id: str | None
    boot: str
    position: int
    resumed_from: int | None  # the client's Last-Event-ID when its missed events are replayed
    resync: bool
    replay: list[Event]
    terminal: Event | None
    finished: bool  # the client already received this job's terminal event
    subscriber: Subscriber | None
    snapshot: Any = None
    snapshot_states: list[JobState] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # all-jobs stream: jobs by status, every job counted
    omitted: dict[str, int] = field(default_factory=dict)  # all-jobs stream: finished jobs left out, by status

    @property
    def first_id(self) -> str:
        return f"{self.boot}-{self.resumed_from if self.resumed_from is not None else self.position}"


class EventBroker:
    """Numbers events `<boot>-<n>`, keeps them for replay and hands each to the streams that want it."""

    def __init__(
        self,
        tracker: Tracker,
        clock: Clock,
        *,
        replay_events: int = 10_000,
        job_replay_events: int = 64,
        client_queue: int = 1_000,
        boot: str | None = None,
        base_url: str | None = None,
        token_required: bool = False,
        scanned: Callable[[], bool] | None = None,
    ) -> None:
        """`base_url` is the sidecar's resolved --external-url: job views and terminal events carry `links` from it.

        `scanned` says when the initial scan is over; until then a discovered job nobody follows publishes no
        event (see _drop_unheard_discoveries). None: every discovery publishes its events.
        """
        self.tracker = tracker
        self.linking = Linking(base_url, token_required)
        self.clock = clock
        self.boot = boot or secrets.token_hex(4)
        self.replay_events = replay_events
        self.job_replay_events = job_replay_events
        self.client_queue = client_queue
        self.published = 0
        self.refused = 0  # streams refused at the --max-streams cap (api/limits.py), for aura_sse_refused_total
        self._lock = threading.Lock()
        self._n = 0
        self._log: deque[Event] = deque()
        self._evicted_through = 0
        self._jobs: dict[str, JobLog] = {}
        self._job_subscribers: dict[str, set[Subscriber]] = {}
        self._all_subscribers: set[Subscriber] = set()
        self._closing = False
        self._scanned = scanned
        self._starting = scanned is not None
        self._skipped_through = 0  # the id of the last skipped discovery: no replay reaches back across it
        self.skipped_discoveries = 0

    # -- publishing (tracker listener: ingest or stall-timer thread, under the tracker lock) ----------
    def publish(self, batch: Sequence[Transition]) -> None:
        if self._starting:
            batch = self._drop_unheard_discoveries(batch)
        specs = events_for(batch, self.tracker.get, self.linking)
        if not specs:
            return
        with self._lock:
            first = self._n + 1
            events = [self._number(name, job_id, data, first) for name, job_id, data in specs]
            by_job: dict[str, list[Event]] = {}
            for event in events:
                by_job.setdefault(str(event.job_id), []).append(event)
            for job_id, mine in by_job.items():
                for subscriber in self._job_subscribers.get(job_id, ()):
                    subscriber.offer(mine)
            for subscriber in self._all_subscribers:
                subscriber.offer(events)
            for name, job_id, data in specs:
                if name is EventName.WARNING and data.get("code") == "job_removed":
                    self._jobs.pop(job_id, None)

    def _drop_unheard_discoveries(self, batch: Sequence[Transition]) -> Sequence[Transition]:
        """During the initial scan, the discoveries no stream follows, left out of the batch.

        Why: at start-up every existing job is discovered at once, and its `job-status` (with the job's whole
        view) and a finished job's `job-completed` were encoded and kept in a replay log that nobody was there
        to read: ~40% of the start-up CPU and ~2.5 KB per job (250 MB at 100,000 jobs). A client that connects
        later gets these jobs in its `connected` snapshot. Each skip takes an event id of its own and moves
        the replay horizon past it, so a client resuming from before it is told to resync (a fresh snapshot)
        instead of being replayed a history with the job missing. Called under the tracker lock, which
        open() holds too: no stream can subscribe between this check and the publish.
        """
        assert self._scanned is not None
        if self._scanned():
            self._starting = False  # for good: from now on every discovery is published
            return batch
        if self._all_subscribers:
            return batch
        unheard = {
            t.job_id for t in batch if t.kind is TransitionKind.DISCOVERED and t.job_id not in self._job_subscribers
        }
        if not unheard:
            return batch
        with self._lock:
            self._n += 1
            self._skipped_through = self._n
            self._evicted_through = max(self._evicted_through, self._n)
            self.skipped_discoveries += len(unheard)
        return [t for t in batch if not (t.kind is TransitionKind.DISCOVERED and t.job_id in unheard)]

    def _number(self, name: EventName, job_id: str, data: dict[str, Any], batch: int) -> Event:
        self._n += 1
        frame = encode(name, f"{self.boot}-{self._n}", data)
        # The frame has everything; what stays in memory for thousands of jobs is the lean part.
        lean = {key: value for key, value in data.items() if key not in _FRAME_ONLY}
        event = Event(self._n, name, job_id, lean, frame, batch)
        self.published += 1
        if len(self._log) >= self.replay_events:
            self._evicted_through = max(self._evicted_through, self._log.popleft().n)
        self._log.append(event)
        log = self._jobs.get(job_id)
        if log is None:
            log = self._jobs[job_id] = JobLog(self.job_replay_events)
            log.evicted_through = self._skipped_through  # its discovery may have been skipped: no replay before it
        log.add(event)
        return event

    # -- streams (event loop) -----------------------------------------------------------------------
    def open(
        self,
        job_id: str | None,
        last_event_id: str | None,
        loop: asyncio.AbstractEventLoop,
        finished_limit: int | None = None,
    ) -> Opening:
        """Register a stream and capture its snapshot and replay, with no event able to slip in between.

        An all-jobs snapshot holds every active job and at most `finished_limit` finished ones (None: all).
        """
        kind = StreamKind.JOB if job_id is not None else StreamKind.ALL
        wanted = EventId.parse(last_event_id)
        with self.tracker.lock, self._lock:
            position = self._n
            replay: list[Event] | None = None
            if wanted is not None and wanted.boot == self.boot and wanted.n <= position:
                replay = self._replay(job_id, wanted.n)
            log = self._jobs.get(job_id) if job_id is not None else None
            terminal = log.terminal if log is not None else None
            states: list[JobState] = []
            counts: dict[str, int] = {}
            omitted: dict[str, int] = {}
            if job_id is None:
                chosen, counts, omitted = _bounded(self.tracker, finished_limit)
                states = [frozen(state) for state in chosen]
            elif (state := self.tracker.get(job_id)) is not None:
                states = [frozen(state)]
                if terminal is None and state.record is not None and state.record.status.terminal:
                    ended = terminal_event(state, state.record, self.clock.now(), self.linking)
                    terminal = self._resent(*ended, position)
            finished = terminal is not None and replay is not None and wanted is not None and wanted.n >= terminal.n
            if replay is None and terminal is not None and job_id is not None:
                # Sent again after `connected`, so it takes the snapshot's id: ids never go back in a stream.
                terminal = self._resent(terminal.name, job_id, terminal.data, position)
            subscriber = None
            if not finished and not self._closing:
                subscriber = Subscriber(kind, job_id, loop, self.client_queue)
                if job_id is None:
                    self._all_subscribers.add(subscriber)
                else:
                    self._job_subscribers.setdefault(job_id, set()).add(subscriber)
        return Opening(
            kind=kind,
            job_id=job_id,
            boot=self.boot,
            position=position,
            resumed_from=wanted.n if replay is not None and wanted is not None else None,
            # Any id we cannot replay from (another boot, too old, or not one of ours at all) is a resync.
            resync=bool(last_event_id and last_event_id.strip()) and replay is None,
            replay=replay or [],
            terminal=terminal,
            finished=finished,
            subscriber=subscriber,
            snapshot_states=states,
            counts=counts,
            omitted=omitted,
        )

    def _replay(self, job_id: str | None, n: int) -> list[Event] | None:
        """Every event after `n` this stream would have received, or None when some were already dropped."""
        if n >= self._evicted_through:
            return [e for e in self._log if e.n > n and (job_id is None or e.job_id == job_id)]
        log = self._jobs.get(job_id) if job_id is not None else None
        if log is not None and n >= log.evicted_through:
            return log.after(n)
        return None

    def _resent(self, name: EventName, job_id: str, data: dict[str, Any], position: int) -> Event:
        links = self.linking.of(job_id)
        if links is not None and name.terminal:
            data = {**data, "links": links.as_dict()}  # the kept copy is lean (_FRAME_ONLY)
        return Event(position, name, job_id, data, encode(name, f"{self.boot}-{position}", data), position)

    def snapshot(self, opening: Opening) -> None:
        """Build the views of the opening's jobs (outside every lock: it can take a while for 10,000 jobs)."""
        now = self.clock.now()
        per_job = opening.kind is StreamKind.JOB
        base = self.linking.base_url
        views = [
            view
            for state in opening.snapshot_states
            if (view := job_snapshot(state, now, steps=per_job, base_url=base)) is not None
        ]
        if per_job:
            opening.snapshot = views[0] if views else None
        else:
            views.sort(key=lambda v: v.get("createdAt") or "", reverse=True)
            opening.snapshot = views
        opening.snapshot_states = []

    def close(self, subscriber: Subscriber | None) -> None:
        """Forget a stream (idempotent); called when it ends for any reason."""
        if subscriber is None:
            return
        subscriber.end(Ending.SHUTDOWN)
        with self._lock:
            self._all_subscribers.discard(subscriber)
            if subscriber.job_id is not None:
                subscribers = self._job_subscribers.get(subscriber.job_id)
                if subscribers is not None:
                    subscribers.discard(subscriber)
                    if not subscribers:
                        del self._job_subscribers[subscriber.job_id]

    def shutdown(self) -> None:
        """End every stream now and refuse new subscriptions (server shutting down)."""
        with self._lock:
            self._closing = True
        for subscriber in self.streams():
            subscriber.end(Ending.SHUTDOWN)

    def reopen(self) -> None:
        """Accept subscriptions again (a sidecar started after a stop)."""
        with self._lock:
            self._closing = False

    # -- introspection --------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Connected clients per stream kind (the aura_sse_clients gauge)."""
        with self._lock:
            per_job = sum(len(subs) for subs in self._job_subscribers.values())
            return {StreamKind.JOB.value: per_job, StreamKind.ALL.value: len(self._all_subscribers)}

    def subscribers_of(self, job_id: str) -> int:
        """Clients following this job on its own stream (evidence for the diagnosis)."""
        with self._lock:
            return len(self._job_subscribers.get(job_id, ()))

    def streams(self) -> list[Subscriber]:
        """Every connected stream's subscriber."""
        with self._lock:
            return [*self._all_subscribers, *(s for subs in self._job_subscribers.values() for s in subs)]

    def buffered(self) -> list[Event]:
        """The events the shared replay buffer still holds, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def last_id(self) -> str:
        return f"{self.boot}-{self._n}"


def _bounded(tracker: Tracker, finished_limit: int | None) -> tuple[list[JobState], dict[str, int], dict[str, int]]:
    """Every active job plus the `finished_limit` most recently finished, the counts by status, and what was left out.

    Why: 20,000 jobs make a 16 MB `connected` frame that every board downloads and parses on each
    (re)connect, while what a board shows first is what is running; old finished jobs are counted instead.
    Read from the tracker's index (under its lock): no pass over the finished jobs, however many.
    """
    index = tracker.index
    counts = {status.value: n for status, n in index.counts().items() if n}
    active = tracker.states(index.active())  # never-readable ones too: their snapshot is skipped later
    kept = tracker.states(index.recently_finished(finished_limit))
    omitted = {status: n for status, n in counts.items() if JobStatus(status).terminal}
    for state in kept:
        if state.record is not None:
            omitted[state.record.status.value] -= 1
    return active + kept, counts, {status: n for status, n in omitted.items() if n}
