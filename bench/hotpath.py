#!/usr/bin/env python3
"""The relay's own work per pipelined EVENT: no sockets, no load generator beside it.

``--connections`` sessions of one in-process relay (the checkout this file is in, or
``--tree``) each hand ``--window`` signed kind-1 EVENT frames at a time to
``Relay.handle_frames``, which is what the server does with frames a client pipelined,
until ``--events`` have been answered. The store is SQLite in a temporary directory, with
the relay's default settings. Every answer must be ``OK true``.

It prints events/s and CPU per event by thread (``main`` is the event loop). On a shared
machine those move with the neighbours' load; ``--callgrind`` counts instructions instead,
a figure that does not: the frames are signed first, then the relay runs twice under
``valgrind --tool=callgrind`` (``--events`` and twice as many) and the difference of the
two counts, divided by ``--events``, is printed as instructions per event (start-up and
imports cancel out). Under valgrind the threads take turns, so commits hold other batches
than in a real run: compare counts with counts, not with CPU time.

Examples::

    python bench/hotpath.py --events 20000
    python bench/hotpath.py --events 2000 --callgrind
    python bench/hotpath.py --events 2000 --callgrind --tree /tmp/baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from loadgen import sign_events, split_by_thread, thread_cpu


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=20000, help="EVENTs answered")
    parser.add_argument("-n", "--connections", type=int, default=10)
    parser.add_argument("-w", "--window", type=int, default=16, help="frames per batch")
    parser.add_argument(
        "--stamp-rate",
        type=int,
        default=0,
        help="created_at advances a second every this many events of a connection "
        "(loadgen.py's option); 0: all in one second",
    )
    parser.add_argument("--tree", help="source tree of the relay to run (default: this one)")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions under valgrind instead"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--frames", help=argparse.SUPPRESS)  # pre-signed frames (child)
    return parser.parse_args(argv)


def signed_frames(events: int, connections: int, stamp_rate: int = 0) -> list[list[bytes]]:
    """``events`` EVENT frames spread over ``connections`` authors, one list each."""
    per_key = -(-events // connections)
    return sign_events([os.urandom(32) for _ in range(connections)], per_key, 2, stamp_rate)


class CountingPeer:
    """A connection that keeps nothing it is sent: counts OKs and anything else."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.accepted = 0
        self.problems: list[bytes] = []
        self.is_open = True

    def send(self, data: bytes) -> None:
        self.send_many((data,))

    def send_many(self, frames: Iterable[bytes]) -> None:
        for frame in frames:
            if frame.startswith(b'["OK"') and b'",true,' in frame:
                self.accepted += 1
            elif not frame.startswith(b'["AUTH"'):
                self.problems.append(frame)

    async def drain(self) -> None:
        return None


async def serve_frames(frames: list[list[bytes]], window: int, data_dir: str) -> dict[str, Any]:
    """Run one relay over ``frames`` (a list per connection); timings and CPU by thread."""
    from relay.app import Relay
    from relay.config import load_config
    from relay.store.sqlite import SqliteStore

    config = load_config(
        None,
        {
            "MLSGW_CONFIG": "",
            "MLSGW_DATA__PATH": data_dir,
            "MLSGW_RATE_LIMITER__MESSAGES_PER_SECOND": "1000000",
        },
    )
    store = SqliteStore(config.sqlite_path)
    await store.open()
    relay = Relay(config, store)
    await relay.start()
    peers = [CountingPeer(relay.new_session("127.0.0.1")) for _ in frames]
    for peer in peers:
        relay.register(peer)

    async def drive(peer: CountingPeer, mine: list[bytes]) -> None:
        for start in range(0, len(mine), window):
            await relay.handle_frames(peer, mine[start : start + window])

    before = thread_cpu(os.getpid())
    started = time.perf_counter()
    await asyncio.gather(*(drive(p, f) for p, f in zip(peers, frames, strict=True)))
    seconds = time.perf_counter() - started
    after = thread_cpu(os.getpid())
    for peer in peers:
        relay.unregister(peer)
    await relay.close()
    await store.close()
    by_thread = split_by_thread(os.getpid(), before, after)  # the loop runs on the main thread
    events = sum(len(f) for f in frames)
    accepted = sum(p.accepted for p in peers)
    problems = [frame for p in peers for frame in p.problems]
    return {
        "events": events,
        "accepted": accepted,
        "problems": [frame.decode(errors="replace")[:200] for frame in problems[:5]],
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_us_per_event": {
            name: round(cpu / events * 1e6, 1) for name, cpu in sorted(by_thread.items())
        },
    }


def run_child(args: argparse.Namespace) -> int:
    """Serve the frames in ``--frames`` (the first ``--events`` of them) and print JSON."""
    with open(args.frames, "rb") as f:
        everything = [[bytes.fromhex(x) for x in conn] for conn in orjson.loads(f.read())]
    per_conn = -(-args.events // len(everything))
    frames = [conn[:per_conn] for conn in everything]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="hotpath-") as data_dir:
        result = asyncio.run(serve_frames(frames, args.window, data_dir))
    print(json.dumps(result))
    return 0 if result["accepted"] == result["events"] else 1


_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child_command(args: argparse.Namespace, frames_file: str, events: int) -> list[str]:
    command = [sys.executable, __file__, "--frames", frames_file, "--events", str(events)]
    command += ["--window", str(args.window)]
    if args.callgrind:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + command
    return command


def run_measured(args: argparse.Namespace, frames_file: str, events: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    tree = str(Path(args.tree).resolve()) if args.tree else str(Path(__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    done = subprocess.run(
        child_command(args, frames_file, events), env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:] + done.stdout[-2000:])
        raise SystemExit(f"the relay run failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if args.callgrind:
        match = _COLLECTED.search(done.stderr)
        if match is None:
            raise SystemExit("valgrind printed no instruction count")
        result["instructions"] = int(match.group(1))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.frames:
        return run_child(args)
    if args.callgrind and shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind: apt-get install valgrind")
    total = args.events * (2 if args.callgrind else 1)
    frames = signed_frames(total, args.connections, args.stamp_rate)
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
        f.write(orjson.dumps([[frame.hex() for frame in conn] for conn in frames]))
        f.flush()
        if not args.callgrind:
            result = run_measured(args, f.name, args.events)
        else:
            once = run_measured(args, f.name, args.events)
            twice = run_measured(args, f.name, 2 * args.events)
            extra = twice["events"] - once["events"]
            result = {
                "events": [once["events"], twice["events"]],
                "instructions": [once["instructions"], twice["instructions"]],
                "instructions_per_event": round(
                    (twice["instructions"] - once["instructions"]) / extra
                ),
            }
    result["tree"] = args.tree or "this checkout"
    result["connections"], result["window"] = args.connections, args.window
    if args.json:
        print(json.dumps(result))
    elif args.callgrind:
        print(
            f"{result['tree']}: {result['instructions_per_event']:,} instructions per event"
            f" ({result['events'][0]:,} and {result['events'][1]:,} events,"
            f" {args.connections} connections x {args.window} frames per batch)"
        )
    else:
        cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_event"].items())
        print(
            f"{result['tree']}: {result['events_per_s']:,.0f} events/s;"
            f" CPU per event (us) by thread: {cpu}; accepted {result['accepted']:,}"
            f" of {result['events']:,}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
