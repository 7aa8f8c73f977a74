"""Writer processes for reliability tests (run as `python -m tests.support.writers ...`): Aura-style in-place rewrites.

Each rewrite truncates and rewrites job.json in place in several write() calls, as Aura does, so a
reader can see empty, truncated and half-written files. Percent only grows and the stage names the
rewrite number, so a reader can tell a state that was written from one that never was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def document(job_id: str, n: int, total: int) -> bytes:
    doc = {
        "Id": job_id,
        "Stage": f"Step-{n:06d}",
        "Status": 1,
        "Percent": min(100, n * 100 // total),
        "Eta": None,
        "Logs": [f"[2026-11-23 18:00:00] rewrite {n}"] * 5,
        "CreatedUtc": "2026-11-23T18:00:00.0000000Z",
        "ErrorMessage": None,
        "OutputPath": None,
        "ProgressHistory": [],
        "CurrentProgress": None,
    }
    return json.dumps(doc, indent=2).encode()


def rewrite_in_place(path: Path, data: bytes, chunk: int = 512) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for start in range(0, len(data), chunk):
            os.write(fd, data[start : start + chunk])
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs_dir", type=Path)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--rewrites", type=int, required=True, help="rewrites per job")
    parser.add_argument("--prefix", default="inplace")
    args = parser.parse_args()
    paths = []
    for i in range(args.jobs):
        folder = args.jobs_dir / f"{args.prefix}-{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        paths.append((folder.name, folder / "job.json"))
    for n in range(1, args.rewrites + 1):
        for job_id, path in paths:
            rewrite_in_place(path, document(job_id, n, args.rewrites))
    json.dump({"final_stage": f"Step-{args.rewrites:06d}"}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
