#!/usr/bin/env python3
"""Cold start of ``mlsgw serve``: seconds from the process start to the first answer of
``/health``, and the resident memory of the idle relay, side by side with an older commit.

Each start is a fresh process on a fresh temporary database, with the built-in defaults
(cwd is the temporary directory) and this checkout's code first on ``sys.path``; with
``--baseline-tree`` the same is done for that checkout, the two taking turns. On Cloud Run
an instance takes no request before it answers, so this time is part of every scale-out.

Examples::

    python bench/coldstart.py --starts 5
    python bench/coldstart.py --starts 5 --baseline-tree /tmp/baseline --out /tmp/cold.md
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import compare
from soak import rss_mb

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0  # seconds


def cold_start(tree: Path) -> tuple[float, float]:
    """Start ``mlsgw serve`` from ``tree`` once; seconds until ``/health`` answered, and its
    idle RSS in MB just after. The relay is stopped with SIGTERM and must exit 0."""
    port = compare.free_port()
    with tempfile.TemporaryDirectory(prefix="mlsgw-cold-") as workdir:
        env = dict(os.environ)
        env.pop("MLSGW_CONFIG", None)
        env.update(
            PORT=str(port),
            MLSGW_NETWORK__HOST="127.0.0.1",
            MLSGW_DATA__PATH=str(Path(workdir) / "data"),
            MLSGW_LOG_LEVEL="warning",
            PYTHONPATH=os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")])),
        )
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlsgw", "serve"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"mlsgw from {tree} exited {proc.returncode} during start-up")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.perf_counter() - started > READY_TIMEOUT:
                    raise SystemExit(f"mlsgw from {tree} not ready after {READY_TIMEOUT} s")
                time.sleep(0.005)
            ready = time.perf_counter() - started
            rss = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=READY_TIMEOUT)
        if code != 0:
            raise SystemExit(f"mlsgw from {tree} exited {code} after SIGTERM")
    return ready, rss


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Seconds to ready and idle RSS of mlsgw serve, against an older commit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--starts", type=int, default=5, help="starts of each relay")
    parser.add_argument("--baseline-tree", help="also start mlsgw from this checkout")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    trees = {f"this checkout ({compare.source_state()})": HERE.parent}
    if args.baseline_tree:
        trees[f"`{args.baseline_tree}`"] = Path(args.baseline_tree).resolve()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for _ in range(args.starts):
        for name, tree in trees.items():  # taking turns: a slow minute hits both
            results[name].append(cold_start(tree))
    rows = [
        f"Cold start: {args.starts} starts each, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"{compare.machine()}",
        "",
        "| mlsgw | seconds to /health, median (each start) | idle RSS (MB), median |",
        "|---|---|---:|",
    ]
    for name, starts in results.items():
        each = " / ".join(f"{ready:.2f}" for ready, _ in starts)
        ready = statistics.median(r for r, _ in starts)
        rss = statistics.median(m for _, m in starts)
        rows.append(f"| {name} | {ready:.2f} ({each}) | {rss:.0f} |")
    text = "\n".join(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
