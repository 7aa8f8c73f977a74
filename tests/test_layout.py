"""The package's floors and rooms (docs/architecture.md): imports run one way, and the monitor is free of the SDK."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aura_monitor"

# A room may import rooms on lower floors and itself, never a higher floor.
FLOORS: dict[str, int] = {
    "exceptions": 0,
    "clock": 0,
    "config": 0,
    "otel": 0,
    "ratelog": 0,
    "jobs": 1,
    "records": 2,
    "views": 3,
    "watch": 3,
    "diagnosis": 3,
    "control": 3,
    "reporter": 3,
    "events": 4,
    "telemetry": 4,
    "pipeline": 4,
    "history": 4,
    "sidecar": 5,
    "api": 6,
    "cli": 7,
}
SDK_ROOMS = {"reporter", "pipeline"}
# The commands that run the reference pipeline are the only monitor-side modules that may import it.
SDK_USERS = {"cli.demo", "cli.pipeline", "cli.commands", "cli.main"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every aura_monitor module `module` imports, as dotted names relative to the package."""
    is_package = path.name == "__init__.py"
    package = [part for part in (module.split(".") if is_package else module.split(".")[:-1]) if part]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "aura_monitor":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                found.add(".".join([*target, alias.name]).strip("."))
                found.add(".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aura_monitor":
                    found.add(".".join(alias.name.split(".")[1:]))
    modules = _modules()
    return {name for name in found if name in modules and name}


def _room(module: str) -> str:
    return module.split(".")[0]


GRAPH = {module: _imports(module, path) for module, path in _modules().items() if module}
ROOT = _imports("", PACKAGE / "__init__.py")


def test_every_module_lives_in_a_room_with_a_floor() -> None:
    rooms = {_room(module) for module in GRAPH} - {"__main__"}
    assert rooms <= set(FLOORS), f"rooms without a floor: {rooms - set(FLOORS)}"


def test_the_top_level_holds_at_most_ten_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_up_a_floor(module: str) -> None:
    if module == "__main__":
        return
    floor = FLOORS[_room(module)]
    upward = sorted(t for t in GRAPH[module] if _room(t) != _room(module) and FLOORS.get(_room(t), 0) > floor)
    assert not upward, f"{module} (floor {floor}) imports higher floors: {upward}"


def test_no_two_rooms_import_each_other() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        for target in targets:
            if _room(target) != _room(module):
                edges[_room(module)].add(_room(target))
    loops = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not loops, f"rooms importing each other: {loops}"


def test_the_monitor_imports_neither_the_sdk_nor_the_pipeline() -> None:
    leaks = sorted(
        (module, target)
        for module, targets in GRAPH.items()
        if _room(module) not in SDK_ROOMS and module not in SDK_USERS
        for target in targets
        if _room(target) in SDK_ROOMS
    )
    assert not leaks, f"monitor modules importing the SDK or the pipeline: {leaks}"


def test_events_do_not_import_the_api() -> None:
    assert not [t for m, ts in GRAPH.items() if _room(m) == "events" for t in ts if _room(t) == "api"]


def test_the_package_root_imports_only_the_base_and_the_domain() -> None:
    assert {_room(t) for t in ROOT} <= {"exceptions", "clock", "config", "jobs", "records"}


def _string_literals(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_a_verdict_code_is_spelled_as_a_string_in_one_module_only() -> None:
    from aura_monitor.jobs.model import JobStatus
    from aura_monitor.jobs.stall import ThresholdKind
    from aura_monitor.jobs.verdicts import Verdict

    # Codes that are also status words or threshold kinds are spelled by those enums too.
    shared = {status.value for status in JobStatus} | {kind.value for kind in ThresholdKind}
    codes = {code.value for code in Verdict} - shared
    spelled = {
        name: sorted(codes & _string_literals(path))
        for name, path in _modules().items()
        if name != "jobs.verdicts" and codes & _string_literals(path)
    }
    assert not spelled, f"verdict codes written as strings outside jobs/verdicts.py: {spelled}"


def test_the_boards_verdict_words_and_severities_are_the_enums() -> None:
    import re

    from aura_monitor.jobs.verdicts import SEVERITY, Severity, Verdict

    source = (PACKAGE / "board" / "format.js").read_text()
    words = re.search(r"export const VERDICT_WORDS = \{(.*?)\n\};", source, re.S)
    critical = re.search(r"const CRITICAL = new Set\(\[(.*?)\]\);", source, re.S)
    info = re.search(r'if \(\[(.*?)\]\.includes\(code\)\) return "info";', source, re.S)
    assert words and critical and info, "format.js no longer has VERDICT_WORDS, CRITICAL or the info list"
    assert set(re.findall(r"^\s*(\w+):", words.group(1), re.M)) == {code.value for code in Verdict}
    assert set(re.findall(r'"(\w+)"', critical.group(1))) == {
        c.value for c, s in SEVERITY.items() if s is Severity.CRITICAL
    }
    assert set(re.findall(r'"(\w+)"', info.group(1))) == {c.value for c, s in SEVERITY.items() if s is Severity.INFO}


def test_the_bench_never_imports_the_tests() -> None:
    """The bench runs from a wheel-less checkout without the test tree's helpers (issue 13): it reuses the
    package, never `tests`."""
    bench = PACKAGE.parent / "bench"
    offenders: dict[str, set[str]] = {}
    for path in sorted(bench.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        named = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        named |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        found = {name for name in named if name == "tests" or name.startswith("tests.")}
        if found:
            offenders[path.name] = found
    assert not offenders, f"bench modules importing the tests: {offenders}"
