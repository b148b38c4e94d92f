#!/usr/bin/env python3
"""Two-instance fan-out over Redis: delivery latency within and across instances.

Starts a ``redis-server`` and two ``mlsgw serve`` processes (A and B) on free loopback
ports, both in cluster mode on that Redis, each on its own SQLite file (fan-out does not
read the store; Cloud Run instances would share Firestore). Then runs ``loadgen.py --mode
fanout`` twice:

* ``same instance``: publisher and subscribers on A (the bus publish is on the OK path);
* ``across instances``: publisher on B, subscribers on A (B -> Redis -> A).

Prints a Markdown table (or ``--json``), stops everything. A benchmark, not a test.

    python bench/cluster.py --subscribers 50 --rate 100 --fanout-events 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compare import free_port, redis_server_command, wait_for_redis

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
READY_TIMEOUT = 30.0


def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {READY_TIMEOUT} s")
        time.sleep(0.1)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
            return bool(json.load(reply).get("bus") == "ok")
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Processes:
    """Everything started, stopped in reverse order."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(command, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def start_cluster(
    procs: Processes, workdir: Path, args: argparse.Namespace
) -> tuple[int, int, list[int]]:
    redis_port = free_port()
    procs.start(redis_server_command(redis_port), stdout=subprocess.DEVNULL, cwd=workdir)
    wait_for_redis(redis_port)
    ports, pids = [], []
    for name in ("a", "b"):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSGW_")}
        env.update(
            PORT=str(port),
            MLSGW_NETWORK__HOST="127.0.0.1",
            MLSGW_DATA__PATH=str(workdir / f"data-{name}"),
            MLSGW_CLUSTER__REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            # this checkout's relay, whatever mlsgw is installed
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")])),
        )
        log = (workdir / f"{name}.log").open("wb")
        proc = procs.start(
            [*args.mlsgw_cmd.split(), "serve"], cwd=workdir, env=env, stdout=log, stderr=log
        )
        wait_until(lambda port=port: healthy(port), f"mlsgw serve {name}")
        ports.append(port)
        pids.append(proc.pid)
    return ports[0], ports[1], pids


def fanout(publisher: int, subscribers: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(LOADGEN),
        "--mode",
        "fanout",
        "--url",
        f"ws://127.0.0.1:{publisher}",
        "--subscriber-url",
        f"ws://127.0.0.1:{subscribers}",
        "--subscribers",
        str(args.subscribers),
        "--rate",
        str(args.rate),
        "--fanout-events",
        str(args.fanout_events),
        "--pid",
        str(pid),
        "--json",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"loadgen failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")

    def ms(r: dict[str, Any]) -> str:
        return f"{r['p50_ms']:.2f} / {r['p95_ms']:.2f} / {r['p99_ms']:.2f}"

    def others(r: dict[str, Any]) -> str:
        return f"{r['other_cpu_s'] / r['duration_s']:.2f}" if r["duration_s"] else "-"

    row("delivery latency p50 / p95 / p99 (ms)", ms)
    row("deliveries/s", lambda r: f"{r['extra']['deliveries_per_s']:,.0f}")
    row("errors", lambda r: str(r["errors"]))
    row("instance A CPU per published event (µs)", lambda r: str(r["relay_cpu_us_per_op"]))
    row("other processes' CPU meanwhile (cores)", others)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", "-m", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0, help="published events per second")
    parser.add_argument("--fanout-events", type=int, default=1000, help="measured events")
    parser.add_argument("--mlsgw-cmd", default=f"{sys.executable} -m mlsgw")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        a, b, pids = start_cluster(procs, workdir, args)
        results = {
            "same instance (A -> A)": fanout(a, a, pids[0], args),
            "across instances (B -> Redis -> A)": fanout(b, a, pids[0], args),
        }
    finally:
        procs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
