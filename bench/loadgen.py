#!/usr/bin/env python3
"""Load generator for Nostr relays: publish, REQ and live fan-out benchmarks.

A standalone script (needs only ``orjson`` and ``coincurve``; ``uvloop`` and
``websockets.speedups`` are used when installed). It speaks WebSocket itself through a
small asyncio protocol so that the client spends as little CPU as possible: on a
2-core machine the load generator and the relay share the CPUs.

Modes:

* ``publish``: N connections, each keeping W signed EVENTs in flight; measures OK
  throughput and ack latency (send of EVENT -> receipt of its OK).
* ``req``: seeds events, then N connections each keep W REQs (authors + kinds,
  limit 10) in flight; measures REQ -> EOSE round trips.
* ``fanout``: M subscribers hold a live REQ; one publisher sends paced EVENTs; measures
  delivery latency from the send of each EVENT to its receipt at every subscriber.

With ``--pid`` the relay's CPU time (utime + stime of the process and all its
descendants, from /proc) is read before and after the measured phase.

Example::

    python bench/loadgen.py --url ws://127.0.0.1:8080 --mode publish --pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import sys
import time
import typing
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from coincurve import PrivateKey, PublicKeyXOnly

_c_apply_mask: Callable[[bytes, bytes], bytes] | None
try:
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    _c_apply_mask = None

GRACE_SECONDS = 5.0
CONNECT_TIMEOUT = 10.0


# --- signing ---------------------------------------------------------------------------


_Chunk = tuple[bytes, int, int, int, str, int, int]


def stamp(created_at: int, index: int, total: int, stamp_rate: int) -> int:
    """``created_at`` of a key's event number ``index`` of ``total``: the signing time for
    all of them when ``stamp_rate`` is 0, else one second more every ``stamp_rate``
    events, the last one stamped ``created_at`` (none in the future)."""
    if stamp_rate <= 0:
        return created_at
    return created_at - (total - 1 - index) // stamp_rate


def _sign_chunk(args: _Chunk) -> list[bytes]:
    """Sign ``count`` kind-1 events with one key; returns the EVENT client messages."""
    secret, start, count, signed_at, nonce, total, stamp_rate = args
    key = PrivateKey(secret)
    pubkey = PublicKeyXOnly.from_secret(secret).format().hex()
    out: list[bytes] = []
    for i in range(start, start + count):
        created_at = stamp(signed_at, i, total, stamp_rate)
        content = f"mlsgw bench {nonce} #{i}: the quick brown fox jumps over the lazy dog"
        tags: list[list[str]] = [["t", "bench"]]
        serial = orjson.dumps([0, pubkey, created_at, 1, tags, content])
        digest = hashlib.sha256(serial).digest()
        event = {
            "id": digest.hex(),
            "pubkey": pubkey,
            "created_at": created_at,
            "kind": 1,
            "tags": tags,
            "content": content,
            "sig": key.sign_schnorr(digest).hex(),
        }
        out.append(orjson.dumps(["EVENT", event]))
    return out


def pubkey_of(secret: bytes) -> str:
    """x-only public key (hex) of a 32-byte secret."""
    return PublicKeyXOnly.from_secret(secret).format().hex()


def sign_events(
    secrets: Sequence[bytes], per_key: int, workers: int, stamp_rate: int = 0
) -> list[list[bytes]]:
    """``per_key`` signed EVENT messages for each secret (in parallel above a few thousand),
    stamped as :func:`stamp` says."""
    signed_at = int(time.time())
    nonce = os.urandom(6).hex()
    chunk = 2000
    jobs: list[_Chunk] = []
    owners: list[int] = []
    for k, secret in enumerate(secrets):
        for start in range(0, per_key, chunk):
            size = min(chunk, per_key - start)
            jobs.append((secret, start, size, signed_at, nonce, per_key, stamp_rate))
            owners.append(k)
    result: list[list[bytes]] = [[] for _ in secrets]
    if workers > 1 and len(secrets) * per_key > 4000:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_sign_chunk, jobs))
    else:
        parts = [_sign_chunk(job) for job in jobs]
    for owner, part in zip(owners, parts, strict=True):
        result[owner].extend(part)
    return result


def event_id_of(message: bytes) -> str:
    """The id inside an ``["EVENT", {...}]`` client message built by :func:`_sign_chunk`."""
    start = message.index(b'"id":"') + 6
    return message[start : start + 64].decode()


# --- relay CPU ---------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu(pid: int) -> float:
    """utime + stime in seconds of ``pid`` and every descendant (e.g. gunicorn workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        fields = _stat_fields(current)
        if fields is None:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        stack.extend(children.get(current, []))
    return total / _TICKS


def self_cpu() -> float:
    """CPU seconds used by this load generator so far."""
    t = os.times()
    return t.user + t.system


def machine_busy_cpu() -> float:
    """CPU seconds all processes of the machine have used (non-idle time of /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICKS


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """(OS thread name, user + system CPU seconds) of each thread of ``pid``, by thread id.

    The name is the thread's ``comm`` (what ``top -H`` shows): threads that set their OS
    name show it, others inherit the process name.
    """
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICKS)
    return out


def split_by_thread(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per thread name between two :func:`thread_cpu` readings.

    The main thread (the event loop) is ``main``; unnamed threads, which carry the process
    name, are summed as ``other threads``; threads sharing a name are summed under it.
    """
    main_name = after.get(pid, before.get(pid, ("", 0.0)))[0]
    split: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        if used <= 0:
            continue
        label = "main" if tid == pid else "other threads" if name == main_name else name
        split[label] = split.get(label, 0.0) + used
    return {name: round(value, 3) for name, value in split.items() if value >= 0.01}


@dataclass
class CpuUsage:
    """CPU seconds used during a measured phase."""

    relay: float | None
    client: float
    others: float
    threads: dict[str, float] = field(default_factory=dict)
    """CPU seconds per relay thread name (see :func:`split_by_thread`)."""


class CpuProbe:
    """CPU of the relay (``pid`` and descendants), of this process and of everything else."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.relay = 0.0
        self.client = 0.0
        self.machine = 0.0
        self.threads: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self.threads = thread_cpu(self.pid) if self.pid else {}
        self.relay = process_tree_cpu(self.pid) if self.pid else 0.0
        self.client = self_cpu()
        self.machine = machine_busy_cpu()

    def stop(self) -> CpuUsage:
        relay = process_tree_cpu(self.pid) - self.relay if self.pid else None
        client = self_cpu() - self.client
        machine = machine_busy_cpu() - self.machine
        others = max(0.0, machine - client - (relay or 0.0))
        threads = split_by_thread(self.pid, self.threads, thread_cpu(self.pid)) if self.pid else {}
        return CpuUsage(relay, client, others, threads)


# --- a minimal WebSocket client ------------------------------------------------------------


def _mask(data: bytes, key: bytes) -> bytes:
    if _c_apply_mask is not None:
        return _c_apply_mask(data, key)
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class WsClient(asyncio.Protocol):
    """One client WebSocket: RFC 6455 framing, text messages delivered to ``on_message``."""

    def __init__(self, host: str, path: str) -> None:
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_message: Callable[[bytes], None] = lambda _data: None
        self.fragments: list[bytes] = []
        self.close_reason = ""

    @classmethod
    async def connect(cls, url: str) -> WsClient:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise SystemExit(f"only ws:// URLs are supported, got {url!r}")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        loop = asyncio.get_running_loop()
        netloc = parts.netloc
        _, client = await loop.create_connection(lambda: cls(netloc, parts.path or "/"), host, port)
        await asyncio.wait_for(asyncio.shield(client.opened), CONNECT_TIMEOUT)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.close_reason:
            self.close_reason = f"connection lost: {exc!r}" if exc else "connection lost"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(self.close_reason))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        """Send one text frame (masked, as a client must)."""
        if self.transport is None or self.transport.is_closing():
            return
        n = len(data)
        key = random.randbytes(4)
        if n < 126:
            head = bytes((0x81, 0x80 | n))
        elif n < 65536:
            head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
        self.transport.write(head + key + _mask(data, key))

    def _control(self, opcode: int, payload: bytes = b"") -> None:
        if self.transport is None or self.transport.is_closing():
            return
        key = random.randbytes(4)
        head = bytes((0x80 | opcode, 0x80 | len(payload)))
        self.transport.write(head + key + _mask(payload, key))

    def close(self) -> None:
        """Send a close frame and close the socket."""
        if self.transport is not None and not self.transport.is_closing():
            self.close_reason = self.close_reason or "closed by client"
            self._control(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.close_reason = f"handshake refused: {head.splitlines()[0]!r}"
                self.opened.set_exception(ConnectionError(self.close_reason))
                assert self.transport is not None
                self.transport.close()
                return
            self.handshaken = True
            self.opened.set_result(None)
        buf = self.buffer
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            masked = b1 & 0x80
            if masked:
                header += 4
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            if masked:
                payload = _mask(payload, bytes(buf[pos + header - 4 : pos + header]))
            pos += header + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (0x1, 0x2):
            if fin:
                self.on_message(payload)
            else:
                self.fragments = [payload]
        elif opcode == 0x0:
            self.fragments.append(payload)
            if fin:
                data = b"".join(self.fragments)
                self.fragments = []
                self.on_message(data)
        elif opcode == 0x9:  # ping
            self._control(0xA, payload)
        elif opcode == 0x8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = f"closed by relay: {code} {payload[2:].decode(errors='replace')}"
            self._control(0x8, payload[:2])
            if self.transport is not None:
                self.transport.close()


# --- results --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


@dataclass
class Result:
    """What one run measured. Latencies are in milliseconds."""

    mode: str
    url: str
    connections: int
    window: int
    duration_s: float
    operations: int
    rate_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)
    relay_cpu_s: float | None = None
    relay_cpu_us_per_op: float | None = None
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    relay_threads: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def summarise(
    mode: str,
    args: argparse.Namespace,
    latencies: list[float],
    elapsed: float,
    errors: Counter[str],
    cpu: CpuUsage,
    operations: int | None = None,
) -> Result:
    lat = sorted(x * 1000 for x in latencies)
    ops = len(lat) if operations is None else operations
    extra: dict[str, Any] = {}
    if args.histogram:
        extra["histogram_ms"] = histogram(lat)
    return Result(
        mode=mode,
        url=args.url,
        connections=args.connections if mode != "fanout" else args.subscribers,
        window=args.window if mode != "fanout" else 1,
        duration_s=round(elapsed, 3),
        operations=ops,
        rate_per_s=round(ops / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=round(percentile(lat, 50), 3),
        p95_ms=round(percentile(lat, 95), 3),
        p99_ms=round(percentile(lat, 99), 3),
        max_ms=round(lat[-1], 3) if lat else 0.0,
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        relay_cpu_s=None if cpu.relay is None else round(cpu.relay, 3),
        relay_cpu_us_per_op=(
            None if cpu.relay is None or ops == 0 else round(cpu.relay / ops * 1e6, 1)
        ),
        client_cpu_s=round(cpu.client, 3),
        other_cpu_s=round(cpu.others, 3),
        relay_threads=cpu.threads,
        extra=extra,
    )


HISTOGRAM_EDGES_MS = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 50, 100, 1000)


def histogram(sorted_ms: Sequence[float]) -> dict[str, str]:
    """Share of latencies per bucket, e.g. ``{"1-1.5 ms": "31.2 %"}`` (empty buckets left out)."""
    counts: Counter[str] = Counter()
    low: float = 0
    index = 0
    labels = []
    for edge in (*HISTOGRAM_EDGES_MS, float("inf")):
        label = f"{low:g}-{edge:g} ms" if edge != float("inf") else f">= {low:g} ms"
        labels.append(label)
        while index < len(sorted_ms) and sorted_ms[index] < edge:
            counts[label] += 1
            index += 1
        low = edge
    total = len(sorted_ms) or 1
    return {label: f"{100 * counts[label] / total:.1f} %" for label in labels if counts[label]}


def _reason_kind(reason: str) -> str:
    prefix, sep, _ = reason.partition(":")
    return prefix if sep and " " not in prefix else reason[:40]


# --- shared plumbing ------------------------------------------------------------------------


async def open_clients(url: str, count: int) -> list[WsClient]:
    """Open ``count`` connections (a few at a time, so the accept queue never overflows)."""
    clients: list[WsClient] = []
    for start in range(0, count, 25):
        batch = [WsClient.connect(url) for _ in range(start, min(count, start + 25))]
        clients.extend(await asyncio.gather(*batch))
    await asyncio.sleep(0.2)  # let greetings (["AUTH", challenge]) arrive and be ignored
    return clients


def close_all(clients: Sequence[WsClient]) -> None:
    for client in clients:
        client.close()


class Meter:
    """Shared state of a windowed run: warm-up and stop times, latencies, errors."""

    def __init__(self, warmup: float, duration: float, pid: int | None) -> None:
        self.warmup = warmup
        self.duration = duration
        self.pid = pid
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.t0 = 0.0
        self.t_measure = 0.0
        self.t_stop = 0.0
        self.measuring = False
        self.cpu = CpuProbe(pid)
        self.stopped = False
        self.exhausted_at: float | None = None

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.t_measure = self.t0 + self.warmup
        self.t_stop = self.t_measure + self.duration
        if self.warmup <= 0:
            self._begin()

    def _begin(self) -> None:
        self.measuring = True
        self.t_measure = time.perf_counter()
        self.cpu.start()

    def tick(self, now: float) -> bool:
        """Called on every reply; False once the run is over (no new requests)."""
        if not self.measuring and now >= self.t_measure:
            self._begin()
        if now >= self.t_stop:
            self.stopped = True
        return not self.stopped

    def record(self, sent_at: float, now: float) -> None:
        if self.measuring and sent_at >= self.t_measure:
            self.latencies.append(now - sent_at)

    def error(self, kind: str) -> None:
        if self.measuring:
            self.errors[kind] += 1

    def finish(self) -> tuple[float, CpuUsage]:
        """Measured seconds and the CPU used meanwhile."""
        end = time.perf_counter()
        end = min(end, self.t_stop) if self.exhausted_at is None else self.exhausted_at
        return end - self.t_measure, self.cpu.stop()


async def wait_done(done: asyncio.Future[None], args: argparse.Namespace) -> None:
    """Wait until every connection has finished (or the run overran by far)."""
    try:
        await asyncio.wait_for(
            asyncio.shield(done), args.warmup + args.duration + GRACE_SECONDS * 2
        )
    except TimeoutError:
        pass


async def wait_drained(clients: Sequence[WsClient], inflight: Callable[[], int]) -> int:
    """Wait (at most GRACE_SECONDS) for outstanding replies; returns how many never came."""
    deadline = time.perf_counter() + GRACE_SECONDS
    while inflight() and time.perf_counter() < deadline:
        if all(c.closed.done() for c in clients):
            break
        await asyncio.sleep(0.01)
    return inflight()


# --- publish --------------------------------------------------------------------------------


async def run_publish(args: argparse.Namespace) -> Result:
    per_key = args.events // args.connections + 1
    secrets = [os.urandom(32) for _ in range(args.connections)]
    _log(args, f"signing {per_key * args.connections} events ...")
    batches = sign_events(secrets, per_key, args.sign_workers, args.stamp_rate)
    clients = await open_clients(args.url, args.connections)
    meter = Meter(args.warmup, args.duration, args.pid)
    done = asyncio.get_running_loop().create_future()
    pending: list[dict[str, float]] = [{} for _ in clients]
    remaining = [len(clients)]

    def make_handler(index: int) -> Callable[[], None]:
        client = clients[index]
        queue: Iterator[bytes] = iter(batches[index])
        inflight = pending[index]
        finished = [False]

        def finish() -> None:
            if not finished[0]:
                finished[0] = True
                remaining[0] -= 1
                if remaining[0] == 0 and not done.done():
                    done.set_result(None)

        def send_next() -> None:
            message = next(queue, None)
            if message is None:
                if meter.exhausted_at is None:
                    meter.exhausted_at = time.perf_counter()
                    meter.stopped = True
                return
            inflight[event_id_of(message)] = time.perf_counter()
            client.send(message)

        def on_message(data: bytes) -> None:
            now = time.perf_counter()
            msg = orjson.loads(data)
            head = msg[0]
            if head == "OK":
                sent_at = inflight.pop(msg[1], None)
                if sent_at is None:
                    meter.error("OK for unknown id")
                    return
                if msg[2] is True:
                    meter.record(sent_at, now)
                else:
                    meter.error(f"OK false {_reason_kind(str(msg[3]))}")
                if meter.tick(now):
                    send_next()
                elif not inflight:
                    finish()
            elif head == "NOTICE":
                meter.error("NOTICE")
            elif head != "AUTH":
                meter.error(f"unexpected {head}")

        client.on_message = on_message
        client.closed.add_done_callback(lambda _f: finish())

        def start() -> None:
            for _ in range(args.window):
                send_next()

        return start

    _log(args, f"publishing: {len(clients)} connections x window {args.window}")
    result = await drive(
        "publish",
        args,
        clients,
        [make_handler(i) for i in range(len(clients))],
        meter,
        done,
        lambda: sum(len(p) for p in pending),
        "no reply",
    )
    if meter.exhausted_at is not None:
        result.notes.append("ran out of pre-signed events; raise --events")
    close_all(clients)
    return result


async def drive(
    mode: str,
    args: argparse.Namespace,
    clients: Sequence[WsClient],
    starters: Sequence[Callable[[], None]],
    meter: Meter,
    done: asyncio.Future[None],
    inflight: Callable[[], int],
    unanswered: str,
) -> Result:
    """Start every connection, measure until done, drain, and summarise; operations still
    unanswered after the drain count as errors named ``unanswered``."""
    announce_start(args)
    meter.start()
    for start in starters:
        start()
    await wait_done(done, args)
    elapsed, cpu = meter.finish()
    meter.stopped = True
    lost = await wait_drained(clients, inflight)
    result = summarise(mode, args, meter.latencies, elapsed, meter.errors, cpu)
    if lost:
        result.errors += lost
        result.error_kinds[unanswered] = lost
    _connection_notes(result, clients)
    return result


def _connection_notes(result: Result, clients: Sequence[WsClient]) -> None:
    dropped = Counter(c.close_reason for c in clients if c.closed.done())
    for reason, count in dropped.items():
        result.errors += count
        result.error_kinds[f"dropped: {reason}"] = count


# --- req --------------------------------------------------------------------------------------


async def seed(args: argparse.Namespace, secrets: Sequence[bytes]) -> int:
    """Publish ``args.seed_per_author`` events per author; returns how many were accepted."""
    batches = sign_events(secrets, args.seed_per_author, args.sign_workers)
    messages = [m for batch in batches for m in batch]
    by_id = {orjson.loads(m)[1]["id"]: m for m in messages}
    clients = await open_clients(args.url, min(4, args.connections))
    accepted = 0
    retry: list[bytes] = []  # rate-limited by the relay's per-connection cap: send again
    queue = iter(messages)
    done = asyncio.get_running_loop().create_future()
    outstanding = [0]

    for client in clients:

        def on_message(data: bytes, client: WsClient = client) -> None:
            nonlocal accepted
            msg = orjson.loads(data)
            if msg[0] != "OK":
                return
            outstanding[0] -= 1
            accepted += msg[2] is True
            if msg[2] is False and str(msg[3]).startswith("rate-limited:"):
                retry.append(by_id[msg[1]])
            message = retry.pop() if retry else next(queue, None)
            if message is not None:
                outstanding[0] += 1
                client.send(message)
            elif outstanding[0] == 0 and not done.done():
                done.set_result(None)

        client.on_message = on_message
        for _ in range(8):
            message = next(queue, None)
            if message is not None:
                outstanding[0] += 1
                client.send(message)
    closed = [asyncio.ensure_future(_closed_in_time(c)) for c in clients]
    await asyncio.wait([done, *closed], timeout=300, return_when=asyncio.FIRST_COMPLETED)
    for task in closed:
        task.cancel()
    if not done.done():
        reasons = "; ".join(sorted({c.close_reason for c in clients if c.close_reason}))
        raise SystemExit(f"seeding failed after {accepted} events: {reasons or 'timed out'}")
    close_all(clients)
    return accepted


async def _closed_in_time(client: WsClient) -> None:
    await asyncio.shield(client.closed)


async def run_req(args: argparse.Namespace) -> Result:
    secrets = [os.urandom(32) for _ in range(args.authors)]
    authors = [pubkey_of(s) for s in secrets]
    _log(args, f"seeding {args.authors} authors x {args.seed_per_author} events ...")
    accepted = await seed(args, secrets)
    expected = min(10, args.seed_per_author)
    clients = await open_clients(args.url, args.connections)
    meter = Meter(args.warmup, args.duration, args.pid)
    done = asyncio.get_running_loop().create_future()
    pending: list[dict[str, tuple[float, int]]] = [{} for _ in clients]
    remaining = [len(clients)]
    rng = random.Random(1)

    def make_handler(index: int) -> Callable[[], None]:
        client = clients[index]
        inflight = pending[index]
        finished = [False]

        def finish() -> None:
            if not finished[0]:
                finished[0] = True
                remaining[0] -= 1
                if remaining[0] == 0 and not done.done():
                    done.set_result(None)

        def send_req(sub_id: str) -> None:
            author = authors[rng.randrange(len(authors))]
            flt = {"authors": [author], "kinds": [1], "limit": 10}
            inflight[sub_id] = (time.perf_counter(), 0)
            client.send(orjson.dumps(["REQ", sub_id, flt]))

        def on_message(data: bytes) -> None:
            now = time.perf_counter()
            msg = orjson.loads(data)
            head = msg[0]
            if head == "EVENT":
                entry = inflight.get(msg[1])
                if entry is not None:
                    inflight[msg[1]] = (entry[0], entry[1] + 1)
                return
            if head == "EOSE":
                sub_id = msg[1]
                entry = inflight.pop(sub_id, None)
                if entry is None:
                    meter.error("EOSE for unknown subscription")
                    return
                if entry[1] == expected:
                    meter.record(entry[0], now)
                else:
                    meter.error(f"{entry[1]} events instead of {expected}")
                if meter.tick(now):
                    send_req(sub_id)  # same id: the new REQ replaces the finished one
                elif not inflight:
                    finish()
            elif head == "CLOSED":
                inflight.pop(msg[1], None)
                meter.error(f"CLOSED {_reason_kind(str(msg[2]))}")
                if meter.tick(now):
                    send_req(msg[1])
            elif head == "NOTICE":
                meter.error("NOTICE")
            elif head != "AUTH":
                meter.error(f"unexpected {head}")

        client.on_message = on_message
        client.closed.add_done_callback(lambda _f: finish())

        def start() -> None:
            for slot in range(args.window):
                send_req(f"q{index}-{slot}")

        return start

    _log(args, f"querying: {len(clients)} connections x window {args.window}")
    result = await drive(
        "req",
        args,
        clients,
        [make_handler(i) for i in range(len(clients))],
        meter,
        done,
        lambda: sum(len(p) for p in pending),
        "no EOSE",
    )
    result.extra["seeded"] = accepted
    close_all(clients)
    return result


# --- fanout ------------------------------------------------------------------------------------


async def run_fanout(args: argparse.Namespace) -> Result:
    secret = os.urandom(32)
    author = pubkey_of(secret)
    warm = max(0, int(args.warmup * args.rate))
    total = warm + args.fanout_events
    _log(args, f"signing {total} events ...")
    messages = sign_events([secret], total, args.sign_workers)[0]
    ids = [event_id_of(m) for m in messages]
    subscribers = await open_clients(args.subscriber_url or args.url, args.subscribers)
    (publisher,) = await open_clients(args.url, 1)
    loop = asyncio.get_running_loop()
    sent_at: dict[str, float] = {}
    measured: set[str] = set(ids[warm:])
    latencies: list[float] = []
    received = Counter[str]()
    errors: Counter[str] = Counter()
    eose = [0]
    all_eose = loop.create_future()

    for client in subscribers:

        def on_message(data: bytes) -> None:
            now = time.perf_counter()
            msg = orjson.loads(data)
            head = msg[0]
            if head == "EVENT":
                event_id = msg[2]["id"]
                t = sent_at.get(event_id)
                if t is None:
                    errors["event not sent by publisher"] += 1
                elif event_id in measured:
                    latencies.append(now - t)
                    received[event_id] += 1
            elif head == "EOSE":
                eose[0] += 1
                if eose[0] == len(subscribers) and not all_eose.done():
                    all_eose.set_result(None)
            elif head == "CLOSED":
                errors[f"CLOSED {_reason_kind(str(msg[2]))}"] += 1
            elif head == "NOTICE":
                errors["NOTICE"] += 1

        client.on_message = on_message
        client.send(orjson.dumps(["REQ", "live", {"authors": [author], "kinds": [1], "limit": 0}]))
    await asyncio.wait_for(all_eose, 30)

    acked: asyncio.Queue[tuple[str, bool, str]] = asyncio.Queue()

    def on_publisher(data: bytes) -> None:
        msg = orjson.loads(data)
        if msg[0] == "OK":
            acked.put_nowait((msg[1], msg[2] is True, str(msg[3])))

    publisher.on_message = on_publisher
    _log(args, f"fan-out: {len(subscribers)} subscribers, {args.rate} events/s")
    interval = 1.0 / args.rate
    probe = CpuProbe(args.pid)
    t_measure = 0.0
    next_send = time.perf_counter()
    announce_start(args)
    for index, message in enumerate(messages):
        if index == warm:
            probe.start()
            t_measure = time.perf_counter()
        delay = next_send - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_send = max(next_send + interval, time.perf_counter() - interval)
        sent_at[ids[index]] = time.perf_counter()
        publisher.send(message)
        try:
            _, ok, reason = await asyncio.wait_for(acked.get(), GRACE_SECONDS)
        except TimeoutError:
            errors["publisher: no OK"] += 1
            continue
        if not ok:
            errors[f"publisher: OK false {_reason_kind(reason)}"] += 1
    expected = len(subscribers) * len(measured)
    deadline = time.perf_counter() + GRACE_SECONDS
    while len(latencies) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t_measure
    cpu = probe.stop()
    missing = expected - len(latencies)
    if missing > 0:
        errors["deliveries missing"] += missing
    duplicated = sum(max(0, n - len(subscribers)) for n in received.values())
    if duplicated:
        errors["duplicate deliveries"] += duplicated
    result = summarise(
        "fanout",
        args,
        latencies,
        elapsed,
        errors,
        cpu,
        operations=len(measured),
    )
    result.extra["deliveries"] = len(latencies)
    result.extra["deliveries_per_s"] = round(len(latencies) / elapsed, 1) if elapsed else 0.0
    _connection_notes(result, [*subscribers, publisher])
    close_all([*subscribers, publisher])
    return result


# --- output -----------------------------------------------------------------------------------

_LABELS = {
    "publish": ("EVENT/s", "ack latency"),
    "req": ("REQ round trips/s", "REQ->EOSE latency"),
    "fanout": ("published events/s", "delivery latency"),
}


def format_table(result: Result) -> str:
    rate_label, latency_label = _LABELS[result.mode]
    rows = [
        ("mode", result.mode),
        ("relay", result.url),
        ("connections" if result.mode != "fanout" else "subscribers", str(result.connections)),
        ("in-flight window", str(result.window)),
        ("measured seconds", f"{result.duration_s:.2f}"),
        ("operations", str(result.operations)),
        (rate_label, f"{result.rate_per_s:,.0f}"),
        (f"{latency_label} p50", f"{result.p50_ms:.2f} ms"),
        (f"{latency_label} p95", f"{result.p95_ms:.2f} ms"),
        (f"{latency_label} p99", f"{result.p99_ms:.2f} ms"),
        (f"{latency_label} max", f"{result.max_ms:.2f} ms"),
        ("errors", str(result.errors)),
    ]
    rows += [(f"  {kind}", str(count)) for kind, count in sorted(result.error_kinds.items())]
    if result.relay_cpu_s is not None:
        rows.append(("relay CPU", f"{result.relay_cpu_s:.2f} s"))
        rows.append(("relay CPU per operation", f"{result.relay_cpu_us_per_op} µs"))
        seconds = result.duration_s or 1.0
        rows += [
            (f"  thread {name}", f"{value:.2f} s ({value / seconds:.2f} cores)")
            for name, value in sorted(result.relay_threads.items(), key=lambda kv: -kv[1])
        ]
    rows.append(("load generator CPU", f"{result.client_cpu_s:.2f} s"))
    rows.append(("other processes' CPU", f"{result.other_cpu_s:.2f} s"))
    for key, value in result.extra.items():
        if isinstance(value, dict):
            rows.append((key, ""))
            rows += [(f"  {k}", str(v)) for k, v in value.items()]
        else:
            rows.append((key, str(value)))
    rows += [("note", note) for note in result.notes]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def announce_start(args: argparse.Namespace) -> None:
    """Signing and connecting are done; the (warm-up) load begins now."""
    if args.started_file:
        Path(args.started_file).write_text(f"{time.time()}\n")


def _log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"[loadgen] {text}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark a Nostr relay (publish, req or fanout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8080", help="relay WebSocket URL")
    parser.add_argument("--mode", choices=("publish", "req", "fanout"), default="publish")
    parser.add_argument("--connections", "-n", type=int, default=10, help="client connections")
    parser.add_argument("--window", "-w", type=int, default=1, help="in flight per connection")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--events", type=int, default=150_000, help="publish: events to pre-sign (upper bound)"
    )
    parser.add_argument(
        "--stamp-rate",
        type=int,
        default=0,
        help="publish: a connection's created_at advances one second every this many "
        "events, ending at the signing time, as a client sending that many a second would "
        "stamp them; 0 stamps every event with the signing time (one busy second)",
    )
    parser.add_argument("--authors", type=int, default=100, help="req: authors to seed")
    parser.add_argument("--seed-per-author", type=int, default=100, help="req: events per author")
    parser.add_argument("--subscribers", "-m", type=int, default=50, help="fanout: subscribers")
    parser.add_argument("--rate", type=float, default=100.0, help="fanout: events per second")
    parser.add_argument(
        "--fanout-events", type=int, default=1000, help="fanout: measured events to publish"
    )
    parser.add_argument(
        "--subscriber-url",
        help="fanout: subscribers connect here instead of --url (another instance of a "
        "cluster: delivery latency across instances)",
    )
    parser.add_argument("--pid", type=int, help="relay process id (CPU of it and its children)")
    parser.add_argument(
        "--sign-workers", type=int, default=os.cpu_count() or 1, help="processes for signing"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--histogram", action="store_true", help="also show a latency histogram")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--started-file", help="create this file when the load starts (to attach a profiler)"
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.window < 1 or args.subscribers < 1 or args.rate <= 0:
        parser.error("--connections, --window, --subscribers and --rate must be positive")
    if args.stamp_rate < 0:
        parser.error("--stamp-rate must be 0 or positive")
    return args


async def run(args: argparse.Namespace) -> Result:
    """Run the selected mode once."""
    if args.mode == "publish":
        return await run_publish(args)
    if args.mode == "req":
        return await run_req(args)
    return await run_fanout(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        runner: Callable[[Any], Result] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        result = runner(run(args))
    except (OSError, TimeoutError) as exc:
        print(f"loadgen: {args.url}: {exc!r}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
