"""Every rule and dashboard query against the live stack's Prometheus: rules load and evaluate, every
expression is valid PromQL, every dashboard panel returns data, and the reference worker is scraped."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tests.support import HANG_S
from tests.support.alerts_live_fixtures import RENDERED, STALLED, Stack
from tests.support.live_stack import panel_queries, poll, rules, substitute

pytestmark = pytest.mark.timeout(300)  # the first test also starts the stack: four processes, then a render


def series_with_values(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in result if not math.isnan(float(s["value"][1]))]


def dashboard_variables(stack: Stack) -> dict[str, str]:
    return {
        "instance": stack.instance,
        "job_id": STALLED,
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "5m",
    }


def test_every_rule_loads_and_evaluates_without_error(stack: Stack) -> None:
    expected = {rule.name for rule in rules()}

    def evaluated() -> list[dict[str, Any]] | None:
        loaded = [rule for group in stack.prometheus.rule_groups() for rule in group["rules"]]
        if {rule["name"] for rule in loaded} != expected:
            return None
        if any(rule["lastEvaluation"].startswith("0001-") for rule in loaded):
            return None
        return loaded

    loaded = poll(evaluated, HANG_S, "every rule of alerts/*.rules.yml to be loaded and evaluated")
    assert [(rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"] == []


def test_every_rule_expression_is_valid_promql(stack: Stack) -> None:
    failures = {}
    for rule in rules():
        answer = stack.prometheus.query(rule.expr)
        if answer["status"] != "success":
            failures[rule.name] = answer.get("error")
    assert failures == {}


def test_every_dashboard_query_is_valid_promql(stack: Stack) -> None:
    variables = dashboard_variables(stack)
    failures = {}
    for query in panel_queries():
        answer = stack.prometheus.query(substitute(query.expr, variables))
        if answer["status"] != "success":
            failures[f"{query.dashboard} / {query.panel} / {query.ref_id}"] = answer.get("error")
    assert failures == {}


def test_dashboard_panels_return_data(stack: Stack) -> None:
    variables = dashboard_variables(stack)
    expected = panel_queries()
    assert len(expected) >= 30

    def empty() -> list[str]:
        stack.check_alive()
        return [
            f"{q.dashboard} / {q.panel} / {q.ref_id}: {substitute(q.expr, variables)}"
            for q in expected
            if not series_with_values(stack.prometheus.vector(substitute(q.expr, variables)))
        ]

    deadline = time.monotonic() + 20
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = empty()
    assert missing == [], "panels without data"


def test_the_reference_worker_is_scraped_and_its_render_reaches_the_sidecar(stack: Stack) -> None:
    assert stack.job(RENDERED)["status"] == "completed"
    assert stack.prometheus.vector(f'up{{job="aura-pipeline",instance="{stack.worker_instance}"}} == 1')
    poll(
        lambda: stack.prometheus.vector("aura_pipeline_render_speed_ratio_count > 0"),
        HANG_S,
        "the worker's render speed in Prometheus",
    )
