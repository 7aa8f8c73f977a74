"""SSE load client (a separate process): holds many streams open and logs when each progress event arrives.

    python -m bench.sse_client URL --jobs ID,ID,... | --all N --seconds S --out FILE

Writes one line per `step-progress` event: `job message receive-time`, after S seconds or on SIGTERM (a
caller that knows when its writer is done stops it then, instead of waiting out a generous S).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse


async def follow(client: httpx.AsyncClient, path: str, out: list[str], stop_at: float) -> None:
    try:
        async with aconnect_sse(client, "GET", path) as source:
            async for event in source.aiter_sse():
                now = time.time()
                if event.event == "step-progress":
                    data = json.loads(event.data)
                    out.append(f"{data['jobId']} {data.get('message')} {now!r}")
                if now > stop_at:
                    return
    except httpx.HTTPError:
        return


async def main_async(args: argparse.Namespace) -> None:
    stop_at = time.time() + args.seconds
    paths = [f"/api/jobs/{job}/events" for job in args.jobs.split(",") if job] if args.jobs else []
    paths += ["/api/events"] * args.all
    limits = httpx.Limits(max_connections=len(paths) + 5, max_keepalive_connections=len(paths) + 5)
    out: list[str] = []
    async with httpx.AsyncClient(base_url=args.url, timeout=httpx.Timeout(10, read=None), limits=limits) as client:
        tasks = [asyncio.create_task(follow(client, path, out, stop_at)) for path in paths]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        followed = asyncio.create_task(asyncio.wait(tasks))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([followed, stopped], timeout=args.seconds + 5, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in tasks:
            task.cancel()
    args.out.write_text("\n".join(out) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--jobs", default="")
    parser.add_argument("--all", type=int, default=0)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
