#!/usr/bin/env python3
"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile into hotspot tables.

Each line of the input is ``frame;frame;...;leaf count`` (root first). Prints, as
Markdown, the functions with the most samples on top of the stack ("self") and the
most samples anywhere in the stack ("total"), and, when py-spy recorded with
``--threads``, the share of each thread.

Example::

    py-spy record --format raw --threads -o /tmp/profile.txt --pid PID --duration 20
    python bench/hotspots.py /tmp/profile.txt --top 25
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_THREAD = re.compile(r"^(?:thread|process) \(")
# A leaf line that blocks: a thread waiting for work (py-spy may not see it as idle).
_WAIT_CALL = re.compile(r"\.(?:get|wait|acquire|join|select|poll)\(")
_SITE_PACKAGES = re.compile(r".*/(?:site-packages|lib/python3\.\d+)/")


@dataclass
class Profile:
    """Sample counts by function (self and inclusive) and by thread."""

    total: int
    waiting: int
    self_counts: Counter[str]
    line_counts: Counter[str]
    total_counts: Counter[str]
    threads: Counter[str]


def short_frame(frame: str, root: str | None, keep_line: bool = False) -> str:
    """``func (path:line)`` -> ``func (short/path)``: shortened path, line number optional."""
    name, _, rest = frame.partition(" (")
    path = rest.rstrip(")") if keep_line else rest.rstrip(")").rsplit(":", 1)[0]
    if root and path.startswith(root):
        path = path[len(root) :].lstrip("/")
    path = _SITE_PACKAGES.sub("", path)
    return f"{name} ({path})" if path else name


def is_waiting(frame: str, cache: dict[str, bool]) -> bool:
    """True if the frame's source line is a blocking wait (``queue.get()``, ``cond.wait()``)."""
    if frame not in cache:
        location = frame.partition(" (")[2].rstrip(")")
        path, _, line = location.rpartition(":")
        text = ""
        # py-spy strips sys.path prefixes: look the file up the way the relay found it
        candidates = [Path(path)] + [Path(base, path) for base in ("", *sys.path) if base]
        for candidate in candidates if line.isdigit() else []:
            try:
                lines = candidate.read_text().splitlines()
            except OSError:
                continue
            text = lines[int(line) - 1] if 0 < int(line) <= len(lines) else ""
            break
        cache[frame] = bool(_WAIT_CALL.search(text))
    return cache[frame]


def load(path: Path, root: str | None = None, drop_waits: bool = True) -> Profile:
    """Parse a collapsed-stack file; samples whose leaf line is a blocking wait are only
    counted as ``waiting`` (unless ``drop_waits`` is False)."""
    self_counts: Counter[str] = Counter()
    line_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    waiting = 0
    cache: dict[str, bool] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "all"
        if frames and _THREAD.match(frames[0]):
            thread = frames.pop(0)
        frames = [f for f in frames if f]
        if not frames:
            continue
        if drop_waits and is_waiting(frames[-1], cache):
            waiting += count
            continue
        line_counts[short_frame(frames[-1], root, keep_line=True)] += count
        frames = [short_frame(f, root) for f in frames]
        total += count
        threads[thread] += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    return Profile(total, waiting, self_counts, line_counts, total_counts, threads)


def markdown(profile: Profile, top: int) -> str:
    """The hotspot tables as Markdown."""
    if profile.total == 0:
        return "(no samples)\n"

    def pct(n: int) -> str:
        return f"{100 * n / profile.total:.1f} %"

    out = [f"{profile.total} samples (idle excluded by py-spy)."]
    if profile.waiting:
        out[0] += (
            f" A further {profile.waiting} samples of threads blocked on a queue/lock wait"
            " are left out."
        )
    out.append("")
    if len(profile.threads) > 1:
        out += ["| thread | samples |", "|---|---:|"]
        out += [f"| {t} | {pct(n)} |" for t, n in profile.threads.most_common(8)]
        out.append("")
    out += [
        "Self time (the function itself was running):",
        "",
        "| # | function | self |",
        "|---:|---|---:|",
    ]
    for i, (name, n) in enumerate(profile.self_counts.most_common(top), 1):
        out.append(f"| {i} | `{name}` | {pct(n)} |")
    out += [
        "",
        "Self time by source line:",
        "",
        "| # | line | self |",
        "|---:|---|---:|",
    ]
    for i, (name, n) in enumerate(profile.line_counts.most_common(top), 1):
        out.append(f"| {i} | `{name}` | {pct(n)} |")
    out += [
        "",
        "Total time (the function or anything it called was running):",
        "",
        "| # | function | total |",
        "|---:|---|---:|",
    ]
    for i, (name, n) in enumerate(profile.total_counts.most_common(top), 1):
        out.append(f"| {i} | `{name}` | {pct(n)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--top", type=int, default=20, help="rows per table")
    parser.add_argument("--root", help="path prefix to strip (default: current directory)")
    parser.add_argument(
        "--keep-waits", action="store_true", help="keep samples blocked on queue/lock waits"
    )
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else str(Path.cwd())
    sys.stdout.write(markdown(load(args.profile, root, not args.keep_waits), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
