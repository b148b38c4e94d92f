"""REQ answers over real sockets: stored JSON passed through byte for byte, frames built
by the server, guarded kinds still under the delivery rules."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from relay.core.event import Event
from relay.server import text_frame_header
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import TIMEOUT, Keys, RelayClient
from tests.support.stores import FlakyStore

ALICE, BOB, CAROL = Keys(), Keys(), Keys()


async def raw_answer(client: RelayClient, sub_id: str, *filters: object) -> list[str]:
    """The text of every message up to and including the answer's EOSE/CLOSED."""
    await client.send("REQ", sub_id, *filters)
    texts: list[str] = []
    while True:
        text = await asyncio.wait_for(client.ws.recv(), TIMEOUT)
        assert isinstance(text, str)
        message = orjson.loads(text)
        if message[0] == "AUTH":
            continue
        texts.append(text)
        if message[0] in ("EOSE", "CLOSED") and message[1] == sub_id:
            return texts


def answer_frame(sub_id: str, event: Event) -> str:
    return '["EVENT",' + orjson.dumps(sub_id).decode() + "," + event.raw.decode() + "]"


async def test_a_stored_event_is_answered_with_the_bytes_it_was_published_with(
    running: RunningRelay,
) -> None:
    """The REQ answer carries the event's JSON exactly as published (escapes, non-ASCII,
    tags), after a sub id that needs escaping, then EOSE; a live delivery is the same."""
    client = await running.client()
    event = ALICE.sign(1, 'quote " backslash \\ é 😀 \u2028 \n', [["t", "x"], ["e", "ab" * 32]])
    assert (await client.publish(event))[2] is True
    sub_id = 'sub "1" é'
    texts = await raw_answer(client, sub_id, {"authors": [ALICE.pubkey], "kinds": [1]})
    assert texts == [answer_frame(sub_id, event), orjson.dumps(["EOSE", sub_id]).decode()]
    live = ALICE.sign(1, "live é")
    await client.publish(live)
    while True:
        text = await asyncio.wait_for(client.ws.recv(), TIMEOUT)
        if orjson.loads(text)[0] == "EVENT":
            break
    assert text == answer_frame(sub_id, live)


async def test_limit_and_order_follow_nip01_on_the_passthrough_path(
    running: RunningRelay,
) -> None:
    """Newest first, ties by lowest id, each filter's limit, no duplicates across filters."""
    client = await running.client()
    now = int(time.time())
    events = [ALICE.sign(1, str(i), created_at=now - i // 2) for i in range(8)]
    for event in events:
        assert (await client.publish(event))[2] is True
    expected = sorted(events, key=lambda e: (-e.created_at, e.id))
    got, end = await client.req("a", {"kinds": [1], "limit": 5})
    assert [e["id"] for e in got] == [e.id for e in expected[:5]] and end == ["EOSE", "a"]
    got, _ = await client.req(
        "b", {"kinds": [1], "limit": 2}, {"authors": [ALICE.pubkey], "kinds": [1], "limit": 3}
    )
    assert [e["id"] for e in got] == [e.id for e in expected[:3]]


async def test_frames_of_every_header_size_reach_a_strict_client_one_event_each(
    running: RunningRelay,
) -> None:
    """Answers whose frames need the 16-bit and 64-bit length forms arrive intact, one
    event per frame, then a 7-bit EOSE (the websockets client checks the framing)."""
    client = await running.client(max_size=None)
    now = int(time.time())
    empty = len(answer_frame("s", ALICE.sign(1, "", created_at=now)))
    sizes = (400, 65535, 65536, 70000)
    events = [
        ALICE.sign(1, "x" * (size - empty), created_at=now - i) for i, size in enumerate(sizes)
    ]
    for event in events:
        assert (await client.publish(event))[2] is True
    texts = await raw_answer(client, "s", {"authors": [ALICE.pubkey], "kinds": [1]})
    assert [len(t.encode()) for t in texts[:-1]] == list(sizes)
    assert texts == [*(answer_frame("s", e) for e in events), '["EOSE","s"]']


def test_text_frame_headers_use_the_shortest_length_form() -> None:
    """FIN + text opcode, no mask bit; 7-bit up to 125, then 16-bit, then 64-bit."""
    assert text_frame_header(0) == b"\x81\x00"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


async def test_guarded_kinds_are_still_answered_through_the_delivery_rules(
    running: RunningRelay,
) -> None:
    """A gift wrap reaches its authenticated recipient only, also when the REQ mixes it
    with public kinds; the public events are answered to everyone."""
    publisher = await running.client()
    await publisher.authenticate(ALICE)
    note = ALICE.sign(1, "public")
    wrap = Keys().sign(1059, "ciphertext", [["p", BOB.pubkey]])
    for event in (note, wrap):
        assert (await publisher.publish(event))[2] is True
    recipient, stranger = await running.client(), await running.client()
    await recipient.authenticate(BOB)
    await stranger.authenticate(CAROL)
    mixed = {"kinds": [1, 1059]}
    assert {e["id"] for e in (await recipient.req("r", mixed))[0]} == {note.id, wrap.id}
    assert [e["id"] for e in (await stranger.req("s", mixed))[0]] == [note.id]
    assert (await stranger.req("t", {"kinds": [1059]}))[0] == []
    assert [e["id"] for e in (await stranger.req("u", {}))[0]] == [note.id]


async def test_a_failing_store_closes_a_passthrough_req_with_error_then_recovers(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A REQ over unguarded kinds whose store read fails gets ``CLOSED "error: …"``; the
    same REQ is answered once the store works again."""
    config = make_config(tmp_path / "data")
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    client = await running.client()
    event = ALICE.sign(1, "kept")
    assert (await client.publish(event))[2] is True
    store.fail_queries = True
    end = (await client.req("s", {"kinds": [1]}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("error: ")
    store.fail_queries = False
    events, end = await client.req("s", {"kinds": [1]})
    assert [e["id"] for e in events] == [event.id] and end == ["EOSE", "s"]


async def test_a_hung_store_closes_a_passthrough_req_within_the_store_timeout(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A store read that never answers ends in ``CLOSED "error: …"`` after
    data.store_timeout, and the connection keeps serving."""
    config = make_config(tmp_path / "data", data={"store_timeout": 0.5})
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    client = await running.client()
    store.hang = True
    end = (await client.req("s", {"kinds": [1]}))[1]
    assert end[:2] == ["CLOSED", "s"] and end[2].startswith("error: ")
    store.hang = False
    assert (await client.req("s", {"kinds": [1]}))[1] == ["EOSE", "s"]
