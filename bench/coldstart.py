#!/usr/bin/env python3
"""Cold start of ``mlsgw serve``: seconds from the process start to its first answer (the
NIP-11 document), and the resident memory of the idle relay, side by side with an older
commit.

Each start is a fresh relay started as ``compare.py`` starts one (fresh temporary database,
built-in defaults, the checkout's code first on ``sys.path``), both run as
``python -m mlsgw``; with ``--baseline-tree`` the two checkouts take turns. On Cloud Run an
instance takes no request before it answers, so this time is part of every scale-out.

Examples::

    python bench/coldstart.py --starts 5
    python bench/coldstart.py --starts 5 --baseline-tree /tmp/baseline --out /tmp/cold.md
"""

from __future__ import annotations

import argparse
import atexit
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import compare
from soak import rss_mb

READY_POLL = 0.005  # seconds between two "are you up?" requests


def cold_start(name: str, args: argparse.Namespace) -> tuple[float, float]:
    """Start relay ``name`` (``mlsgw`` or the baseline) once: seconds until it answered, and
    its idle RSS in MB just after. It is stopped with SIGTERM and must exit 0."""
    started = time.perf_counter()
    relay = compare.start_relay(name, args, poll=READY_POLL)
    ready = time.perf_counter() - started
    rss = rss_mb(relay.proc.pid)
    code = relay.stop()
    compare._RUNNING.remove(relay)
    if code != 0:
        raise SystemExit(f"{name} exited {code} after SIGTERM")
    return ready, rss


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Seconds to ready and idle RSS of mlsgw serve, against an older commit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--starts", type=int, default=5, help="starts of each relay")
    parser.add_argument("--baseline-tree", help="also start mlsgw from this checkout")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    # What compare.start_relay reads; both relays start the same way (no console-script shim).
    args.mlsgw_cmd = f"{sys.executable} -m mlsgw"
    args.mlsgw_env = []
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    atexit.register(compare._cleanup)
    names = {"mlsgw": f"this checkout ({compare.source_state()})"}
    if args.baseline_tree:
        names[compare.BASELINE_RELAY] = f"`{args.baseline_tree}`"
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(args.starts):
        for name in names:  # taking turns: a slow minute hits both
            results[name].append(cold_start(name, args))
    rows = [
        f"Cold start: {args.starts} starts each, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"{compare.machine()}",
        "",
        "| mlsgw | seconds to its first answer, median (each start) | idle RSS (MB), median |",
        "|---|---|---:|",
    ]
    for name, starts in results.items():
        each = " / ".join(f"{ready:.2f}" for ready, _ in starts)
        ready = statistics.median(r for r, _ in starts)
        rss = statistics.median(m for _, m in starts)
        rows.append(f"| {names[name]} | {ready:.2f} ({each}) | {rss:.0f} |")
    text = "\n".join(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
