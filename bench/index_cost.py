#!/usr/bin/env python3
"""What the SQLite store's ``created_at`` indexes cost: writer CPU and WAL bytes per event,
and the time of a ``limit: 10`` REQ, for the shipped index keys and two alternatives.

No relay runs: for each variant a scratch database gets the store's migrations, then its
four ``created_at`` indexes and ``tags_by_value`` are rebuilt with the variant's keys. It is
filled with ``--preload`` events, then ``--events`` more are saved in batches of ``--batch``
with the store's own ``save_plain_events``, each batch one transaction as the writer thread
commits them. Every event is kind 1 from one of 10 authors with a ``t`` tag, and
``--per-second`` events share each ``created_at`` second (the pipelined benchmark's rate).

Variants:

* ``shipped``: the keys of the store's migrations (``created_at DESC, id``);
* ``ascending``: the same keys ascending (``created_at, id``), read backwards;
* ``no-id``: ``created_at`` without ``id``; the NIP-01 tie order (lowest id first) then
  costs SQLite a sort of each second's events.

Example::

    python bench/index_cost.py --preload 200000 --events 40000 --batch 50
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.core.event import Event, EventId, Pubkey  # noqa: E402
from relay.core.filters import Filter  # noqa: E402
from relay.store.migrations import apply_migrations  # noqa: E402
from relay.store.sqlite_events import query_raw, save_plain_events  # noqa: E402
from relay.store.sqlite_writer import connect  # noqa: E402

_REBUILT = (
    "events_by_time",
    "events_by_author",
    "events_by_kind",
    "events_by_author_kind",
    "tags_by_value",
)
VARIANTS: dict[str, str] = {
    "shipped": "",
    "ascending": """
        CREATE INDEX events_by_time ON events (created_at, id);
        CREATE INDEX events_by_author ON events (pubkey, created_at);
        CREATE INDEX events_by_kind ON events (kind, created_at, id);
        CREATE INDEX events_by_author_kind ON events (pubkey, kind, created_at, id);
        CREATE INDEX tags_by_value ON tags (name, value, created_at);
    """,
    "no-id": """
        CREATE INDEX events_by_time ON events (created_at);
        CREATE INDEX events_by_author ON events (pubkey, created_at);
        CREATE INDEX events_by_kind ON events (kind, created_at);
        CREATE INDEX events_by_author_kind ON events (pubkey, kind, created_at);
        CREATE INDEX tags_by_value ON tags (name, value, created_at);
    """,
}
AUTHORS = [secrets.token_hex(32) for _ in range(10)]
START = 1_700_000_000


def events(first: int, count: int, per_second: int) -> list[Event]:
    """``count`` kind-1 events numbered from ``first`` (signatures are not checked here)."""
    made = []
    for n in range(first, first + count):
        event_id, pubkey = secrets.token_hex(32), AUTHORS[n % len(AUTHORS)]
        created_at = START + n // per_second
        fields = {"id": event_id, "pubkey": pubkey, "created_at": created_at, "kind": 1}
        raw = orjson.dumps(
            {**fields, "tags": [["t", "bench"]], "content": "x" * 60, "sig": "0" * 128}
        )
        made.append(
            Event(
                EventId(event_id),
                Pubkey(pubkey),
                created_at,
                1,
                (("t", "bench"),),
                "x" * 60,
                "0" * 128,
                raw,
            )
        )
    return made


def save(conn: sqlite3.Connection, first: int, count: int, batch: int, per_second: int) -> float:
    """Save ``count`` events in transactions of ``batch``; this thread's CPU seconds spent."""
    cpu = 0.0
    for start in range(first, first + count, batch):
        run = events(start, min(batch, first + count - start), per_second)
        before = time.thread_time()
        conn.execute("BEGIN IMMEDIATE")
        save_plain_events(conn, run)
        conn.execute("COMMIT")
        cpu += time.thread_time() - before
    return cpu


def req_us(conn: sqlite3.Connection, f: Filter, repeat: int = 50) -> float:
    """Mean µs of one ``query_raw`` of ``f``."""
    started = time.perf_counter()
    for _ in range(repeat):
        query_raw(conn, [f], now=0)
    return (time.perf_counter() - started) / repeat * 1e6


def measure(variant: str, args: argparse.Namespace, workdir: Path) -> str:
    path = workdir / f"{variant}.db"
    conn = connect(str(path), readonly=False, synchronous="normal")
    apply_migrations(conn)
    if VARIANTS[variant]:
        conn.executescript("".join(f"DROP INDEX {name};" for name in _REBUILT) + VARIANTS[variant])
    save(conn, 0, args.preload, 200, args.per_second)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cpu = save(conn, args.preload, args.events, args.batch, args.per_second)
    wal = os.path.getsize(f"{path}-wal")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    kinds = req_us(conn, Filter(kinds=frozenset({1}), limit=10))
    author = req_us(conn, Filter(authors=frozenset({AUTHORS[0]}), kinds=frozenset({1}), limit=10))
    everything = req_us(conn, Filter(limit=10))
    conn.close()
    return (
        f"| {variant} | {cpu / args.events * 1e6:.1f} | {wal / args.events / 1024:.1f} | "
        f"{pages:,} | {kinds:.0f} / {author:.0f} / {everything:.0f} |"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Writer CPU, WAL bytes and REQ time of the store's index keys.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--preload", type=int, default=200_000, help="events before measuring")
    parser.add_argument("--events", type=int, default=40_000, help="events measured")
    parser.add_argument("--batch", type=int, default=50, help="events per transaction")
    parser.add_argument("--per-second", type=int, default=7_000, help="events per created_at")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [
        f"Index keys: {args.preload:,} events preloaded, {args.events:,} measured in batches "
        f"of {args.batch}, {args.per_second:,} per created_at second",
        "",
        "| variant | writer CPU per event (µs) | WAL per event (KB) | database pages |"
        " limit-10 REQ: kinds / author+kinds / no filter (µs) |",
        "|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="mlsgw-index-") as workdir:
        for variant in args.variants.split(","):
            if variant not in VARIANTS:
                raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
            rows.append(measure(variant, args, Path(workdir)))
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
