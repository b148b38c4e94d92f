#!/usr/bin/env python3
"""Stress runs of issue 8 against ``mlsgw serve`` started from a source tree.

``subindex``: C connections each hold S REQs of F ``#t`` filters (V values each); one
publisher sends E events carrying T ``t`` tags (one of which matches one subscription).
Records the time per published event (EVENT→OK, the fan-out runs between two events),
the slowest ``/health`` answer meanwhile, and the deliveries.

``slowreader``: R readers subscribe to kind 1 and spend ``--read-delay`` ms per event,
K stalled readers subscribe and never read; one publisher sends E events of B KB as
fast as the relay acknowledges them. Records deliveries per reader, dropped readers,
and the relay's peak RSS (sampled from /proc every 20 ms).

``stalledreq``: E stored events of B KB; K clients each send a REQ for all of them and
never read. Records the relay's RSS before and its peak over ``--hold`` seconds.

A benchmark, not a test: nothing here asserts a figure. Example::

    python bench/stress.py --tree . --mode subindex
    python bench/stress.py --tree /tmp/before --mode slowreader --env NETWORK__MAX_SEND_BUFFER=...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relay.core.event import sign_event  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def http_get_seconds(port: int, path: str) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    await reader.read()
    writer.close()
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def serve(tree: Path, env_overrides: Sequence[str]) -> AsyncIterator[tuple[int, int]]:
    """``mlsgw serve`` from ``tree`` on a free port; yields (port, pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSGW_")}
        env.update(
            MLSGW_DATA__PATH=data,
            MLSGW_NETWORK__HOST="127.0.0.1",
            MLSGW_RATE_LIMITER__ENABLED="false",
            PYTHONPATH=str(tree),
        )
        for item in env_overrides:
            key, _, value = item.partition("=")
            env[f"MLSGW_{key}"] = value
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlsgw",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            cwd=data,
            env=env,
        )
        try:
            for _ in range(400):
                with contextlib.suppress(OSError):
                    await http_get_seconds(port, "/health")
                    break
                await asyncio.sleep(0.05)
            yield port, process.pid
        finally:
            process.terminate()
            await process.wait()


async def open_client(port: int) -> ClientConnection:
    return await connect(f"ws://127.0.0.1:{port}", max_size=None, open_timeout=30)


async def req_until_eose(ws: ClientConnection, sub_id: str, *filters: object) -> None:
    await ws.send(orjson.dumps(["REQ", sub_id, *filters]).decode())
    while True:
        message = orjson.loads(await ws.recv())
        if message[0] in ("EOSE", "CLOSED") and message[1] == sub_id:
            if message[0] == "CLOSED":
                raise SystemExit(f"REQ refused: {message}")
            return


async def publish(ws: ClientConnection, raw: bytes) -> list[Any]:
    await ws.send(b'["EVENT",' + raw + b"]")
    while True:
        message = orjson.loads(await ws.recv())
        if message[0] == "OK":
            return list(message)


async def run_subindex(args: argparse.Namespace, port: int, pid: int) -> dict[str, object]:
    secret = os.urandom(32)
    subscribers = [await open_client(port) for _ in range(args.connections)]
    for c, ws in enumerate(subscribers):
        for s in range(args.subscriptions):
            filters = [
                {"#t": [f"c{c}s{s}f{f}v{v}" for v in range(args.values)]}
                for f in range(args.filters)
            ]
            await req_until_eose(ws, f"s{s}", *filters)
    delivered = [0] * len(subscribers)

    async def count(i: int, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                delivered[i] += 1

    readers = [asyncio.create_task(count(i, ws)) for i, ws in enumerate(subscribers)]
    publisher = await open_client(port)
    health: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            health.append(await http_get_seconds(port, "/health"))
            await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe())
    per_event = []
    for e in range(args.events):
        tags = [["t", f"nomatch{e}x{i}"] for i in range(args.tags - 1)] + [["t", "c0s0f0v0"]]
        event = sign_event(secret, kind=1, content=f"{e}", tags=tags, created_at=int(time.time()))
        started = time.perf_counter()
        reply = await publish(publisher, event.raw)
        per_event.append(time.perf_counter() - started)
        assert reply[2] is True, reply
    await asyncio.sleep(0.5)
    stop.set()
    await prober
    for task in readers:
        task.cancel()
    return {
        "subscriptions": args.connections * args.subscriptions,
        "filters": args.connections * args.subscriptions * args.filters,
        "event_tags": args.tags,
        "events": args.events,
        "seconds_per_event_mean": round(sum(per_event) / len(per_event), 4),
        "seconds_per_event_max": round(max(per_event), 4),
        "health_max_seconds": round(max(health), 4) if health else None,
        "health_probes": len(health),
        "delivered": sum(delivered),
    }


async def run_slowreader(args: argparse.Namespace, port: int, pid: int) -> dict[str, object]:
    secret = os.urandom(32)
    readers = [await open_client(port) for _ in range(args.readers)]
    for ws in readers:
        await req_until_eose(ws, "r", {"kinds": [1], "limit": 0})
    stalled = await stalled_clients(port, args.stalled, {"kinds": [1], "limit": 0})
    received = [0] * len(readers)
    dropped = [False] * len(readers)

    async def read(i: int, ws: ClientConnection) -> None:
        try:
            while received[i] < args.events:
                await ws.recv()
                received[i] += 1
                await asyncio.sleep(args.read_delay / 1000)
        except ConnectionClosed:
            dropped[i] = True

    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.02)

    baseline = rss_kb(pid)
    sampler = asyncio.create_task(sample())
    tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(readers)]
    publisher = await open_client(port)
    started = time.perf_counter()
    padding = "x" * (args.size_kb * 1024)
    for e in range(args.events):
        event = sign_event(secret, kind=1, content=f"{e} {padding}", created_at=int(time.time()))
        await publish(publisher, event.raw)
    published = time.perf_counter() - started
    await asyncio.wait(tasks, timeout=args.events * args.read_delay / 1000 * 3 + 30)
    stop.set()
    await sampler
    for writer in stalled:
        writer.close()
    return {
        "readers": args.readers,
        "stalled": args.stalled,
        "events": args.events,
        "event_kb": args.size_kb,
        "read_delay_ms": args.read_delay,
        "publish_seconds": round(published, 2),
        "delivered_min": min(received) if received else 0,
        "readers_dropped": sum(dropped),
        "rss_baseline_mb": round(baseline / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
    }


async def run_stalledreq(args: argparse.Namespace, port: int, pid: int) -> dict[str, object]:
    """E stored events of B KB; K clients each REQ all of them and never read."""
    secret = os.urandom(32)
    publisher = await open_client(port)
    padding = "x" * (args.size_kb * 1024)
    for e in range(args.events):
        event = sign_event(secret, kind=1, content=f"{e} {padding}", created_at=int(time.time()))
        await publish(publisher, event.raw)
    baseline = rss_kb(pid)
    peak = baseline
    stalled = await stalled_clients(port, args.stalled, {"kinds": [1], "limit": 1000})
    deadline = time.perf_counter() + args.hold
    while time.perf_counter() < deadline:
        peak = max(peak, rss_kb(pid))
        await asyncio.sleep(0.02)
    for writer in stalled:
        writer.close()
    return {
        "stalled": args.stalled,
        "stored_events": args.events,
        "event_kb": args.size_kb,
        "answer_mb_each": round(args.events * args.size_kb / 1024, 1),
        "hold_seconds": args.hold,
        "rss_baseline_mb": round(baseline / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
    }


async def stalled_clients(
    port: int, count: int, req_filter: dict[str, Any]
) -> list[asyncio.StreamWriter]:
    """``count`` raw WebSockets with tiny receive buffers that each send one REQ of
    ``req_filter`` and never read again (close their writers when done)."""
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writers.append(writer)
        await open_stalled(reader, writer, req_filter)
    return writers


async def open_stalled(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req_filter: dict[str, Any]
) -> bytes:
    """A raw WebSocket that sends one REQ of ``req_filter`` and never reads again."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    payload = orjson.dumps(["REQ", "stall", req_filter])
    assert len(payload) < 126, "one short masked frame"
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    await writer.drain()
    return head


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--mode", choices=("subindex", "slowreader", "stalledreq"), required=True)
    parser.add_argument("--hold", type=float, default=5.0, help="stalledreq: seconds sampled")
    parser.add_argument("--env", action="append", default=[], help="SECTION__KEY=value")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--subscriptions", type=int, default=50)
    parser.add_argument("--filters", type=int, default=20)
    parser.add_argument("--values", type=int, default=5)
    parser.add_argument("--tags", type=int, default=1999)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--size-kb", type=int, default=60)
    parser.add_argument("--read-delay", type=float, default=3.0, help="ms per event")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    async with serve(args.tree.resolve(), args.env) as (port, pid):
        runner = {
            "subindex": run_subindex,
            "slowreader": run_slowreader,
            "stalledreq": run_stalledreq,
        }[args.mode]
        result = await runner(args, port, pid)
    print(json.dumps({"mode": args.mode, "tree": str(args.tree), **result}, indent=2))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
