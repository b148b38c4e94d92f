"""Delivery under load over real sockets (R-P7, issue 8 point 1).

Readers run in their own tasks at a realistic pace (a few ms per event, through the
websockets client's bounded queue, so TCP pushes back on the relay). Timeouts only
bound waits; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from relay.answer_pages import FIRST_PAGE_EVENTS
from relay.answers import STREAM_BATCH_BYTES
from relay.core.event import Event
from relay.core.filters import Filter
from relay.store.sqlite import SqliteStore
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import Keys, RawClient, RelayClient, event_frame

ALICE = Keys()
READ_PACE = 0.003  # seconds a realistic client spends on each event
# Long enough for a paced reader to get through a few thousand events on a loaded box.
DELIVERY_TIMEOUT = 120.0


def slow_consumers(running: RunningRelay) -> float:
    registry = running.relay.metrics.registry
    return registry.get_sample_value("nostr_relay_slow_consumers_total") or 0.0


def big_events(count: int, size: int, label: str) -> list[Event]:
    return [ALICE.sign(1, f"{label} {i} " + "x" * size) for i in range(count)]


async def read_paced(client: RelayClient, sub_id: str, until: str | int) -> list[str]:
    """Event ids received for ``sub_id``, one every READ_PACE seconds, until the EOSE
    (``until="EOSE"``) or ``until`` events; raises if the relay closes or sends CLOSED."""
    ids: list[str] = []
    while True:
        message = await client.recv(timeout=DELIVERY_TIMEOUT)
        if message[0] == "CLOSED":
            raise AssertionError(f"subscription closed after {len(ids)} events: {message}")
        if message[0] == "EOSE" and until == "EOSE":
            return ids
        if message[0] == "EVENT" and message[1] == sub_id:
            ids.append(message[2]["id"])
            if until != "EOSE" and len(ids) == until:
                return ids
            await asyncio.sleep(READ_PACE)


async def publish_all(publisher: RelayClient, events: list[Event]) -> None:
    for event in events:
        reply = await publisher.publish(event)
        assert reply[2] is True, reply


async def publish_burst(publisher: RelayClient, events: list[Event]) -> None:
    """Send every EVENT at once (a burst), then wait for all the OKs."""
    for event in events:
        await publisher.send_raw(event_frame(event))
    oks = 0
    while oks < len(events):
        reply = await publisher.recv_until("OK", timeout=DELIVERY_TIMEOUT)
        assert reply[2] is True, reply
        oks += 1


async def burst_reaches_a_paced_reader(running: RunningRelay, count: int, size: int) -> None:
    reader = await running.client(max_size=None)
    await reader.req("live", {"kinds": [1], "limit": 0})
    events = big_events(count, size, "burst")
    reading = asyncio.create_task(read_paced(reader, "live", count))
    await publish_burst(await running.client(), events)
    received = await asyncio.wait_for(reading, DELIVERY_TIMEOUT)
    assert received == [e.id for e in events]
    assert slow_consumers(running) == 0


async def unthrottled(start_relay: StartRelay, tmp_path: Path) -> RunningRelay:
    """Default limits, except the per-connection message rate (a burst would hit it)."""
    config = make_config(tmp_path / "data", rate_limiter={"messages_per_second": 0})
    running: RunningRelay = await start_relay(config)
    return running


async def test_a_paced_reader_gets_a_burst_of_large_events(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """400 events of 60 KB (24 MB) reach a reader spending 3 ms on each, undropped."""
    await burst_reaches_a_paced_reader(await unthrottled(start_relay, tmp_path), 400, 60_000)


async def test_a_paced_reader_gets_a_burst_of_many_events(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """2,000 events of 5 KB reach a reader spending 3 ms on each, undropped."""
    await burst_reaches_a_paced_reader(await unthrottled(start_relay, tmp_path), 2000, 5_000)


async def test_a_large_req_answer_is_streamed_to_a_paced_reader(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """200 stored events of 100 KB all arrive, then EOSE; the relay never holds more
    than the high-water mark plus one batch of the answer unsent."""
    high_water = 256 * 1024
    config = make_config(tmp_path / "data", network={"send_high_water": high_water})
    running: RunningRelay = await start_relay(config)
    events = big_events(200, 100_000, "stored")
    await publish_all(await running.client(), events)
    reader = await running.client(max_size=None)
    peak = 0
    stop = asyncio.Event()

    async def sample_relay_buffer() -> None:
        nonlocal peak
        while not stop.is_set():
            for conn in running.server.connections:
                if conn.peer is not None and conn.transport is not None:
                    peak = max(peak, conn.transport.get_write_buffer_size())
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample_relay_buffer())
    await reader.send("REQ", "big", {"kinds": [1], "limit": 1000})
    received = await asyncio.wait_for(read_paced(reader, "big", "EOSE"), DELIVERY_TIMEOUT)
    stop.set()
    await sampler
    assert received == [e.id for e in sorted(events, key=lambda e: (-e.created_at, e.id))]
    assert slow_consumers(running) == 0
    assert peak <= high_water + STREAM_BATCH_BYTES + 110_000


async def test_a_client_that_stops_reading_is_dropped_after_the_timeout_below_the_cap(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """No progress above the high-water mark for slow_consumer_timeout drops a client
    long before the hard cap; a reading client on the same relay gets everything."""
    config = make_config(
        tmp_path / "data",
        network={
            "send_high_water": 64 * 1024,
            "slow_consumer_timeout": 0.3,
            "max_send_buffer": 512 * 1024 * 1024,
        },
    )
    running: RunningRelay = await start_relay(config)
    stalled = await RawClient.open(running.url, receive_buffer=4096)
    await stalled.send("REQ", "flood", {"kinds": [1], "limit": 0})
    while (await stalled.recv())[0] != "EOSE":
        pass
    reader = await running.client(max_size=None)
    await reader.req("flood", {"kinds": [1], "limit": 0})
    publisher = await running.client()
    published: list[str] = []
    received: list[str] = []

    async def read_all() -> None:
        while True:
            message = await reader.recv_until("EVENT", timeout=DELIVERY_TIMEOUT)
            received.append(message[2]["id"])

    reading = asyncio.create_task(read_all())
    deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT
    try:
        while slow_consumers(running) < 1:
            assert asyncio.get_running_loop().time() < deadline, "the stalled client was kept"
            event = ALICE.sign(1, f"{len(published)} " + "x" * 20_000)
            await publish_all(publisher, [event])
            published.append(event.id)
            await asyncio.sleep(0.01)
        await stalled.wait_closed()
        while len(received) < len(published):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    finally:
        reading.cancel()
    assert received == published
    assert len(running.relay.peers) == 2
    # Dropped for the timeout, far below the hard cap.
    assert len(published) * 20_000 < 512 * 1024 * 1024


async def test_a_client_that_stops_reading_a_req_answer_is_dropped_and_others_served(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A REQ answer waiting for a client that never reads ends when the client is
    dropped; the relay keeps answering everyone else."""
    config = make_config(
        tmp_path / "data",
        network={"send_high_water": 64 * 1024, "slow_consumer_timeout": 0.3},
    )
    running: RunningRelay = await start_relay(config)
    await publish_all(await running.client(), big_events(60, 50_000, "stored"))
    stalled = await RawClient.open(running.url, receive_buffer=4096)
    await stalled.send("REQ", "big", {"kinds": [1]})
    deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT
    while slow_consumers(running) < 1:  # the stalled client reads nothing meanwhile
        assert asyncio.get_running_loop().time() < deadline, "the stalled client was kept"
        await asyncio.sleep(0.02)
    await stalled.wait_closed()
    other = await running.client(max_size=None)
    events, end = await other.req("again", {"kinds": [1], "limit": 5})
    assert len(events) == 5 and end == ["EOSE", "again"]


class ReadCountingStore(SqliteStore):
    """The SQLite store, counting the events its queries have returned."""

    events_read = 0

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        raws = super().query_raw_now(filters, now)
        self.events_read += len(raws or [])
        return raws

    async def query_raw(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        raws = await super().query_raw(filters, now, oldest_first=oldest_first)
        self.events_read += len(raws)
        return raws


async def test_a_large_req_answer_is_read_from_the_store_only_as_the_client_reads(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """400 stored events of 100 KB and a client that reads nothing: the relay reads on only
    while the client's socket takes data (its buffers and the kernel's, a few MB), not the
    40 MB answer; a reading client gets them all, in order."""
    config = make_config(tmp_path / "data", network={"send_high_water": 256 * 1024})
    store = ReadCountingStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store=store)
    events = big_events(400, 100_000, "stored")
    await publish_all(await running.client(), events)
    stalled = await RawClient.open(running.url, receive_buffer=4096)
    await stalled.send("REQ", "big", {"kinds": [1], "limit": 1000})
    deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT
    while store.events_read == 0:
        assert asyncio.get_running_loop().time() < deadline, "the REQ was never read"
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)  # time enough to read on, had it not waited for the client
    assert FIRST_PAGE_EVENTS <= store.events_read <= len(events) // 2, store.events_read
    stalled.close()
    reader = await running.client(max_size=None)
    await reader.send("REQ", "all", {"kinds": [1], "limit": 1000})
    received = await asyncio.wait_for(read_paced(reader, "all", "EOSE"), DELIVERY_TIMEOUT)
    assert received == [e.id for e in sorted(events, key=lambda e: (-e.created_at, e.id))]


async def test_total_unsent_data_is_bounded_by_dropping_the_largest_backlog(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Past max_send_buffer_total the largest backlog goes, before any single client
    reaches its own cap."""
    config = make_config(
        tmp_path / "data",
        network={
            "send_high_water": 16 * 1024,
            "slow_consumer_timeout": 3600.0,
            "max_send_buffer": 256 * 1024 * 1024,
            "max_send_buffer_total": 2 * 1024 * 1024,
        },
    )
    running: RunningRelay = await start_relay(config)
    stalled = await RawClient.open(running.url, receive_buffer=4096)
    await stalled.send("REQ", "flood", {"kinds": [1], "limit": 0})
    while (await stalled.recv())[0] != "EOSE":
        pass
    publisher = await running.client()
    sent = 0
    deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT
    while slow_consumers(running) < 1:
        assert asyncio.get_running_loop().time() < deadline, "the backlog was kept"
        await publish_all(publisher, [ALICE.sign(1, f"{sent} " + "y" * 50_000)])
        sent += 1
        await asyncio.sleep(0.005)
    await stalled.wait_closed()
    assert (await publisher.publish(ALICE.sign(1, "still serving")))[2] is True
