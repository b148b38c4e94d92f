#!/usr/bin/env python3
"""A mixed soak: publish, REQ and fan-out against one ``mlsgw serve`` at the same time, for
minutes, while the relay's resident memory is sampled.

The relay is started as ``compare.py`` starts it (fresh temporary database, this checkout's
code, default settings but for the per-connection message cap, lifted as there). Three
load generators run side by side, each in back-to-back runs of ``--run-seconds`` until
``--minutes`` have passed:

* ``publish -n 4`` (1 in flight per connection),
* ``req -n 4 --authors 50 --seed-per-author 20``,
* ``fanout -m 50 --rate 50``.

RSS (``VmRSS`` of the relay and its children) is read every ``--sample-seconds``. The report
is a Markdown table of RSS by minute and one line per load with the range of its figures.

Examples (the second soaks an older commit, checked out in a git worktree)::

    python bench/soak.py --minutes 10 --out /tmp/soak.md
    python bench/soak.py --minutes 10 --baseline-tree /tmp/baseline
"""

from __future__ import annotations

import argparse
import atexit
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import compare

LOADS: dict[str, list[str]] = {
    "publish": ["--mode", "publish", "-n", "4"],
    "req": ["--mode", "req", "-n", "4", "--authors", "50", "--seed-per-author", "20"],
    "fanout": ["--mode", "fanout", "-m", "50", "--rate", "50"],
}


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB (0 when it is gone)."""
    total_kb = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
        stack += [int(child) for child in children]
    return total_kb / 1024


def run_load(
    name: str, url: str, pid: int, args: argparse.Namespace, until: float, out: list[dict[str, Any]]
) -> None:
    """Back-to-back loadgen runs of one load until ``until``; results appended to ``out``."""
    while time.monotonic() + 5 < until:
        seconds = min(args.run_seconds, until - time.monotonic() - 2)
        command = [
            sys.executable,
            str(compare.LOADGEN),
            "--url",
            url,
            "--pid",
            str(pid),
            "--json",
            "--quiet",
            "--warmup",
            "1",
            "--duration",
            f"{max(seconds - 1, 1):.0f}",
            *LOADS[name],
        ]
        if name == "fanout":
            command += ["--fanout-events", str(int(max(seconds - 1, 1) * 50))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            out.append({"failed": done.stderr.strip()[-500:]})
            continue
        out.append(json.loads(done.stdout))


def _range(values: Sequence[float], fmt: str) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)}–{format(high, fmt)}"


def summary(name: str, results: Sequence[dict[str, Any]]) -> str:
    """One line: how many runs, rate and p95 ranges, errors."""
    good = [r for r in results if "failed" not in r]
    failed = len(results) - len(good)
    errors = sum(int(r.get("errors", 0)) for r in good)
    kinds: dict[str, int] = {}
    for result in good:
        for kind, count in (result.get("error_kinds") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + int(count)
    if name == "fanout":
        rate = _range([r["extra"].get("deliveries_per_s", 0) for r in good], ",.0f")
        what = f"deliveries/s {rate}"
    else:
        unit = "EVENT" if name == "publish" else "REQ"
        what = f"{unit}/s {_range([r['rate_per_s'] for r in good], ',.0f')}"
    p95 = _range([r["p95_ms"] for r in good], ".1f")
    detail = f" ({', '.join(f'{k}: {v}' for k, v in kinds.items())})" if kinds else ""
    return f"- {name}: {len(good)} runs, {what}, p95 {p95} ms, errors {errors}{detail}" + (
        f", {failed} runs failed" if failed else ""
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Mixed publish + REQ + fan-out soak against mlsgw; RSS over time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--run-seconds", type=float, default=45.0, help="length of each run")
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--mlsgw-cmd", default="mlsgw", help="command that runs mlsgw")
    parser.add_argument(
        "--mlsgw-env", action="append", default=[], help="KEY=VALUE for mlsgw (repeat)"
    )
    parser.add_argument(
        "--baseline-tree",
        help="soak mlsgw from this checkout instead (e.g. a git worktree of an older commit)",
    )
    parser.add_argument("--out", help="also write the Markdown report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    atexit.register(compare._cleanup)
    name = compare.BASELINE_RELAY if args.baseline_tree else "mlsgw"
    # Read before the relay starts: the tree may change while the soak runs.
    where = f"`{args.baseline_tree}`" if args.baseline_tree else compare.source_state()
    relay = compare.start_relay(name, args)
    pid = relay.proc.pid
    samples: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in LOADS}
    start = time.monotonic()
    until = start + args.minutes * 60
    workers = [
        threading.Thread(target=run_load, args=(name, relay.url, pid, args, until, results[name]))
        for name in LOADS
    ]
    try:
        for worker in workers:
            worker.start()
        while any(w.is_alive() for w in workers):
            time.sleep(args.sample_seconds)
            if not relay.alive():
                break
            samples.append(((time.monotonic() - start) / 60, rss_mb(pid)))
        alive = relay.alive()
    finally:
        for worker in workers:
            worker.join()
        code = relay.stop()
        compare._RUNNING.remove(relay)
    header = "| minute | " + " | ".join(f"{m:.1f}" for m, _ in samples) + " |"
    rows = [
        f"Soak: {args.minutes:g} minutes, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"mlsgw at {where}; {compare.machine()}",
        "",
        header,
        "|---|" + "---:|" * len(samples),
        "| RSS (MB) | " + " | ".join(f"{mb:.0f}" for _, mb in samples) + " |",
        "",
        *(summary(name, results[name]) for name in LOADS),
        "",
        f"Relay {'exited ' + str(code) if alive else 'DIED during the soak'} after SIGTERM.",
    ]
    text = "\n".join(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if alive and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
