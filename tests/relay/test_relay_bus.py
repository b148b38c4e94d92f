"""The relay on the bus, in process: two relays sharing a LocalHub stand for two
instances (the Redis bus is exercised the same way in tests/relay/cluster/)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.bus import wire
from relay.bus.local import LocalBus, LocalHub
from relay.core.event import Event
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import http_request
from tests.support.nostr import Keys, RelayClient


async def pair(start_relay: StartRelay, tmp_path: Path) -> tuple[RunningRelay, RunningRelay]:
    hub = LocalHub()
    config = make_config(tmp_path / "data", metrics={"enabled": True})
    a = await start_relay(config, bus=LocalBus(hub))
    b = await start_relay(config, bus=LocalBus(hub))
    return a, b


async def subscribed(running: RunningRelay) -> RelayClient:
    client = await running.client()
    _, end = await client.req("notes", {"kinds": [1]})
    assert end[0] == "EOSE"
    return client


async def test_an_event_accepted_on_one_relay_is_fanned_out_once_on_the_other(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    a, b = await pair(start_relay, tmp_path)
    reader_a, reader_b = await subscribed(a), await subscribed(b)
    event = Keys().sign(1, "hi")
    assert (await (await b.client()).publish(event))[2] is True
    for reader in (reader_a, reader_b):
        assert (await reader.recv_until("EVENT"))[2]["id"] == event.id
        assert await reader.nothing_within(0.3)
    received = a.relay.metrics.registry.get_sample_value(
        "nostr_relay_bus_received_total", {"type": "event"}
    )
    assert received == 1


async def test_a_relay_ignores_its_own_messages_coming_back(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    a, _ = await pair(start_relay, tmp_path)
    reader = await subscribed(a)
    event = Keys().sign(1, "echo")
    a.relay.receive_from_bus(wire.encode_event(a.relay.bus.origin, event))
    # skipped by its header, before the payload is parsed: not even counted malformed
    a.relay.receive_from_bus(b"E" + a.relay.bus.origin.encode() + b"{not an event")
    assert await reader.nothing_within(0.3)
    registry = a.relay.metrics.registry
    counted = [
        registry.get_sample_value("nostr_relay_bus_received_total", {"type": kind})
        for kind in ("event", "malformed")
    ]
    assert not any(counted)


async def test_a_malformed_bus_message_is_counted_and_the_relay_keeps_serving(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    a, b = await pair(start_relay, tmp_path)
    reader = await subscribed(a)
    assert await b.relay.bus.publish(b"E" + b"0" * 32 + b"{not an event")
    await asyncio.sleep(0)  # the hub hands messages over on the next loop iteration
    event = Keys().sign(1, "still serving")
    assert (await (await b.client()).publish(event))[2] is True
    assert (await reader.recv_until("EVENT"))[2]["id"] == event.id
    malformed = a.relay.metrics.registry.get_sample_value(
        "nostr_relay_bus_received_total", {"type": "malformed"}
    )
    assert malformed == 1


async def test_a_relay_alone_on_its_bus_builds_no_bus_messages(
    start_relay: StartRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = LocalHub()
    running = await start_relay(make_config(tmp_path / "data"), bus=LocalBus(hub))
    encoded: list[bytes] = []
    real_encode = wire.encode_event

    def encode_event(origin: str, event: Event) -> bytes:
        encoded.append(real_encode(origin, event))
        return encoded[-1]

    monkeypatch.setattr(wire, "encode_event", encode_event)
    reader = await subscribed(running)
    publisher = await running.client()
    alone = Keys().sign(1, "nobody else listens")
    assert (await publisher.publish(alone))[2] is True
    assert (await reader.recv_until("EVENT"))[2]["id"] == alone.id
    assert encoded == []
    # an instance joining the hub later gets what is published from then on
    listener: list[bytes] = []
    joined = LocalBus(hub)
    await joined.start(listener.append, _resync)
    shared = Keys().sign(1, "now someone does")
    assert (await publisher.publish(shared))[2] is True
    await asyncio.sleep(0)  # the hub hands messages over on the next loop iteration
    messages = [wire.decode(data) for data in listener]
    assert [m.event.id for m in messages if isinstance(m, wire.EventMessage)] == [shared.id]
    assert len(messages) == 1
    await joined.close()


async def _resync() -> None:
    return None


async def test_health_says_the_bus_is_disabled_without_a_cluster(running: RunningRelay) -> None:
    reply = await http_request(running.http_url + "/health")
    document = reply.json()
    assert reply.status == 200 and isinstance(document, dict)
    assert document["bus"] == "disabled"
