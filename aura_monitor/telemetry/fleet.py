"""The fleet as Prometheus sees it: every sidecar up or down, its jobs by status, every stalled job.

Read from the series each sidecar exports (docs/metrics.md), joined on (instance, job) as the alerts do.
A node that is down keeps its place: its jobs are the last values scraped from it (queried at its last
scrape), marked `unknown`, so a dead node never looks like a node with nothing stuck.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..diagnosis.links import JobLinks
from ..records.timestamps import format_iso
from .promql import PrometheusClient, Sample, label_matchers

# How far back a down node's identity and last jobs are looked for. Past it the node is still listed
# (Prometheus keeps its `up` series while discovery lists it), with its jobs unknown and not shown.
LAST_KNOWN_WINDOW = "1h"
# Down nodes whose last-known jobs are fetched (two queries each); beyond this, only counted as down.
LAST_KNOWN_NODES = 20

UP = f"up and on (job) last_over_time(aura_sidecar_info[{LAST_KNOWN_WINDOW}])"
INFO = f"last_over_time(aura_sidecar_info[{LAST_KNOWN_WINDOW}])"

Key = tuple[str, str]  # (instance, scrape job): one target, one sidecar


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FleetNode(_Camel):
    """One sidecar, as Prometheus last saw it."""

    node: str = Field(description="the sidecar's --node (else the target's `node` label, else its instance)")
    instance: str
    scrape_job: str = Field(description="Prometheus' `job` label of the target")
    up: bool
    version: str | None
    external_url: str | None = Field(description="the sidecar's --external-url, where its board and API are")
    board_url: str | None
    last_scrape_at: str | None = Field(description="down nodes: when Prometheus last scraped it")
    jobs: dict[str, int] = Field(description="jobs by status; a down node's are its last known, not current")
    jobs_known: str = Field(description="live, last-known (the node is down) or none (nothing scraped lately)")
    message: str | None = Field(description="what is wrong and what to do, for a node that is down")


class FleetJob(_Camel):
    """One stalled job somewhere in the fleet, with links to the node that holds its evidence."""

    node: str
    instance: str
    job_id: str
    status: str = Field(description="stalled, or unknown when its node is down (the last known state)")
    stage: str | None
    verdict: str | None = Field(description="the diagnosis; null until the sidecar diagnosed it")
    seconds_since_progress: float | None
    threshold_seconds: float | None
    threshold_kind: str | None
    as_of: str = Field(description="when Prometheus scraped these values")
    explain_url: str | None = Field(description="GET this on the job's own node for the diagnosis")
    board_url: str | None = Field(description="the job in its own node's board")


class FleetTotals(_Camel):
    nodes: int
    up: int
    down: int
    stalled: int
    unknown: int = Field(description="stalled jobs of nodes that are down (last known)")


class Fleet(_Camel):
    """GET /api/fleet: every node and every stalled job, from Prometheus."""

    prometheus_url: str
    generated_at: str
    nodes: list[FleetNode]
    stalled: list[FleetJob]
    totals: FleetTotals
    warnings: list[str]


def _key(sample: Sample) -> Key:
    return sample.labels.get("instance", ""), sample.labels.get("job", "")


def _by_key(samples: list[Sample]) -> dict[Key, list[Sample]]:
    grouped: dict[Key, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[_key(sample)].append(sample)
    return grouped


class _Stalls:
    """The stalled-job series of one node (or every up node), as four queries' answers."""

    def __init__(self, stalled: list[Sample], reasons: list[Sample], since: list[Sample], limits: list[Sample]):
        self.stalled = stalled
        self.reason = {(*_key(s), s.labels.get("job_id", "")): s.labels.get("reason") for s in reasons}
        self.since = {(*_key(s), s.labels.get("job_id", "")): s.value for s in since}
        self.limit = {(*_key(s), s.labels.get("job_id", "")): s for s in limits}


async def _stalls(client: PrometheusClient, selector: str = "", at: float | None = None) -> _Stalls:
    # Four queries, not one `or`: `or` matches series on their labels without the metric name, and the
    # stalled and seconds-since series share theirs, so one would hide the other.
    stalled = f"aura_job_stalled{selector}"
    on_stalled = f"and on (instance, job, job_id) {stalled}"
    answers = await asyncio.gather(
        client.query(stalled, at),
        client.query(f"aura_job_stall_reason{selector}", at),
        client.query(f"aura_job_seconds_since_progress{selector} {on_stalled}", at),
        client.query(f"aura_job_threshold_seconds{selector} {on_stalled}", at),
    )
    return _Stalls(*answers)


def _links(external_url: str | None, job_id: str) -> tuple[str | None, str | None]:
    if not external_url:
        return None, None
    links = JobLinks(external_url, job_id)  # the same URLs the node's own explain and SSE bodies name
    return links.url("explain"), links.url("board")


def _jobs_of(stalls: _Stalls, nodes: dict[Key, FleetNode], status: str) -> list[FleetJob]:
    found = []
    for sample in stalls.stalled:
        key = _key(sample)
        job_id = sample.labels.get("job_id", "")
        node = nodes.get(key)
        limit = stalls.limit.get((*key, job_id))
        explain, board = _links(node.external_url if node else None, job_id)
        found.append(
            FleetJob(
                node=node.node if node else sample.labels.get("node", key[0]),
                instance=key[0],
                job_id=job_id,
                status=status,
                stage=sample.labels.get("stage"),
                verdict=stalls.reason.get((*key, job_id)),
                seconds_since_progress=stalls.since.get((*key, job_id)),
                threshold_seconds=limit.value if limit else None,
                threshold_kind=limit.labels.get("kind") if limit else None,
                as_of=format_iso(sample.at),
                explain_url=explain,
                board_url=board,
            )
        )
    return found


async def _last_known(client: PrometheusClient, node: FleetNode) -> list[FleetJob]:
    """A down node's jobs at its last scrape: its counts in `node.jobs`, its stalled jobs returned."""
    selector = label_matchers(instance=node.instance, job=node.scrape_job)
    # The info series is scraped with every other series: its last point is the node's last scrape.
    info = await client.query(f"aura_sidecar_info{selector}[{LAST_KNOWN_WINDOW}]")
    if not info:
        node.jobs_known = "none"
        node.message = (
            f"{node.node} is down and was not scraped in the last {LAST_KNOWN_WINDOW}: its jobs are unknown. "
            "Check that its sidecar runs and that Prometheus can reach it."
        )
        return []
    last = max(sample.at for sample in info)
    node.last_scrape_at = format_iso(last)
    counts, stalls = await asyncio.gather(client.query(f"aura_jobs{selector}", last), _stalls(client, selector, last))
    node.jobs = {s.labels.get("status", "?"): int(s.value) for s in counts}
    node.jobs_known = "last-known"
    return _jobs_of(stalls, {(node.instance, node.scrape_job): node}, "unknown")


def _node(target: Sample, info: Sample | None) -> FleetNode:
    labels = info.labels if info else {}
    # Every link is built from it and shown in browsers: anything but http(s) is no link at all.
    external_url = labels.get("external_url") or None
    if external_url and not external_url.startswith(("http://", "https://")):
        external_url = None
    instance, scrape_job = _key(target)
    up = target.value == 1
    name = labels.get("node") or target.labels.get("node") or instance
    return FleetNode(
        node=name,
        instance=instance,
        scrape_job=scrape_job,
        up=up,
        version=labels.get("version"),
        external_url=external_url,
        board_url=f"{external_url.rstrip('/')}/" if external_url else None,
        last_scrape_at=None,
        jobs={},
        jobs_known="live" if up else "none",
        message=None
        if up
        else (
            f"{name} is down: Prometheus cannot scrape {instance}. Its jobs below are the last known, marked "
            f"unknown; check the sidecar on {name} (systemctl status, or its pod) and the network from Prometheus."
        ),
    )


async def read_fleet(client: PrometheusClient, now: float | None = None) -> Fleet:
    """Every node and every stalled job; raises PrometheusUnavailable when Prometheus cannot answer."""
    targets, infos, counts, stalls = await asyncio.gather(
        client.query(UP), client.query(INFO), client.query("aura_jobs"), _stalls(client)
    )
    info_of = {_key(s): s for s in infos}
    nodes = {_key(t): _node(t, info_of.get(_key(t))) for t in targets}
    for key, samples in _by_key(counts).items():
        if key in nodes and nodes[key].up:
            nodes[key].jobs = {s.labels.get("status", "?"): int(s.value) for s in samples}
    # A stale series of a node that just went down may still answer until its staleness marker: only
    # up nodes' current series count as live.
    live = {key: node for key, node in nodes.items() if node.up}
    stalls.stalled = [sample for sample in stalls.stalled if _key(sample) in live]
    stalled = _jobs_of(stalls, live, "stalled")
    warnings: list[str] = []
    down = sorted((node for node in nodes.values() if not node.up), key=lambda n: n.node)
    for jobs in await asyncio.gather(*(_last_known(client, node) for node in down[:LAST_KNOWN_NODES])):
        stalled.extend(jobs)
    if len(down) > LAST_KNOWN_NODES:
        warnings.append(
            f"{len(down)} nodes are down; the last-known jobs of only the first {LAST_KNOWN_NODES} are listed"
        )
    if not nodes:
        warnings.append(
            f"Prometheus at {client.base_url} has no aura_sidecar_info series in the last {LAST_KNOWN_WINDOW}: "
            "is it scraping the sidecars? (docs/fleet.md, deploy/prometheus/prometheus.yml)"
        )
    ordered = sorted(nodes.values(), key=lambda n: (n.up, n.node))
    # Live stalls first (actionable now), longest stuck first; then the down nodes' last-known ones.
    stalled.sort(key=lambda j: (j.status == "unknown", -(j.seconds_since_progress or 0.0), j.node, j.job_id))
    unknown = sum(1 for job in stalled if job.status == "unknown")
    return Fleet(
        prometheus_url=client.base_url,
        generated_at=format_iso(time.time() if now is None else now),
        nodes=ordered,
        stalled=stalled,
        totals=FleetTotals(
            nodes=len(nodes),
            up=len(live),
            down=len(nodes) - len(live),
            stalled=len(stalled) - unknown,
            unknown=unknown,
        ),
        warnings=warnings,
    )
