"""Where a py-spy recording's samples went, per thread and per function.

    python -m bench.profile_summary FILE [--thread NAME] [--top 25]

FILE is py-spy's raw output (`--format raw --threads`, as `BENCH_PROFILE` records it): one line per
distinct stack, `thread (tid): name;frame;frame... count`. Prints the samples of each thread, then, for
the chosen thread (default: the busiest), the functions by inclusive share, leaving out the samples in
which the thread waited (a frame of `Condition.wait`, `Event.wait`, `Queue.get`, `select` or `poll`).
Recorded with `--idle` (explain_burst), a share is of wall time, waits for the GIL included; without it
(cpu_per_update), of the samples in which the thread ran: weigh either with the thread's CPU.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

WAITING = ("Condition.wait", "Event.wait", "Queue.get", "EpollSelector.select", "_check_inotify_fd", "poll")


def _frame(frame: str) -> str:
    return frame.split(" (", 1)[0]


def read(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread name, frames from the root, samples) for each line of a raw recording."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        stacks.append((thread.split(": ", 1)[-1], frames, int(count)))
    return stacks


def summary(stacks: list[tuple[str, list[str], int]], thread: str | None, top: int) -> list[str]:
    per_thread = Counter[str]()
    for name, _, count in stacks:
        per_thread[name] += count
    total = sum(per_thread.values()) or 1
    lines = [f"{count:7d} {100 * count / total:5.1f}%  thread {name}" for name, count in per_thread.most_common()]
    chosen = thread or (per_thread.most_common(1)[0][0] if per_thread else "")
    working = [(frames, count) for name, frames, count in stacks if name == chosen]
    busy = [(frames, count) for frames, count in working if not any(_frame(f).endswith(WAITING) for f in frames)]
    busy_total = sum(count for _, count in busy) or 1
    inclusive = Counter[str]()
    for frames, count in busy:
        for name in {_frame(f) for f in frames}:
            inclusive[name] += count
    lines.append(f"\nthread {chosen}: {busy_total} busy samples of {sum(c for _, c in working)}; inclusive share:")
    shared = [(name, count) for name, count in inclusive.most_common() if count < busy_total]  # not the root frames
    lines += [f"{count:7d} {100 * count / busy_total:5.1f}%  {name}" for name, count in shared[:top]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", help="a thread name (default: the one with the most samples)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print("\n".join(summary(read(args.file), args.thread, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
