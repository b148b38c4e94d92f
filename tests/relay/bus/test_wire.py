"""The bus message encoding."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from relay.bus import wire
from relay.mls.groups import GroupState
from tests.support.nostr import Keys

ORIGIN = "a" * 32


def test_an_event_travels_with_its_exact_bytes_and_origin() -> None:
    event = Keys().sign(1, "hello")
    message = wire.decode(wire.encode_event(ORIGIN, event))
    assert isinstance(message, wire.EventMessage)
    assert message.origin == ORIGIN
    assert message.event == event
    assert message.event.raw == event.raw


def test_the_sender_is_read_from_the_header_alone() -> None:
    data = wire.encode_event(ORIGIN, Keys().sign(1, "hello"))
    assert wire.sent_by(data, ORIGIN)
    assert not wire.sent_by(data, "b" * 32)
    assert wire.sent_by(b"E" + ORIGIN.encode() + b"{not an event", ORIGIN)
    assert not wire.sent_by(b"E" + ORIGIN[:10].encode(), ORIGIN)


def test_a_group_state_travels_whole() -> None:
    state = GroupState(
        "g1",
        owner="o" * 64,
        admins=frozenset({"o" * 64}),
        members=frozenset({"m" * 64}),
        invitees=frozenset({"i" * 64}),
        removed=frozenset({"r" * 64}),
        last_seq=3,
        last_epoch=7,
    )
    message = wire.decode(wire.encode_group(ORIGIN, state))
    assert message == wire.GroupMessage(ORIGIN, state)


_BUNDLE_OF_ONE = b"B" + ORIGIN.encode() + b"\x00\x00\x00\x02{}"


@pytest.mark.parametrize(
    ("read", "data"),
    [
        (wire.decode, b""),
        (wire.decode, b"E"),
        (wire.decode, b"E" + b"a" * 31),
        (wire.decode, b"X" + b"a" * 32 + b"{}"),
        (wire.decode, b"E" + b"a" * 32 + b"not json"),
        (wire.decode, b"G" + b"a" * 32 + b"[1]"),
        (wire.decode, b"E" + b"\xff" * 32 + b"{}"),
        (wire.decode, _BUNDLE_OF_ONE),  # a bundle is read with unbundle, not decode
        (wire.unbundle, b"B" + b"a" * 31),
        (wire.unbundle, b"B" + b"a" * 32 + b"\x00\x00\x00"),
        (wire.unbundle, b"B" + b"a" * 32 + b"\x00\x00\x00\x05abc"),
        (wire.unbundle, b"E" + b"a" * 32 + b"\x00\x00\x00\x00"),
    ],
)
def test_anything_else_is_refused_precisely(read: Callable[[bytes], object], data: bytes) -> None:
    with pytest.raises(wire.MalformedMessage):
        read(data)


def test_an_origin_must_have_the_fixed_length() -> None:
    with pytest.raises(ValueError):
        wire.encode_event("short", Keys().sign(1))


def test_a_bundle_carries_its_messages_whole_and_in_order() -> None:
    events = [Keys().sign(1, f"n{i}") for i in range(3)]
    messages = [wire.encode_event(ORIGIN, e) for e in events] + [b"E" + ORIGIN.encode()]
    bundle = wire.encode_bundle(ORIGIN, messages)
    assert wire.is_bundle(bundle) and wire.sent_by(bundle, ORIGIN)
    assert not wire.is_bundle(messages[0])
    assert wire.unbundle(bundle) == messages
    assert wire.unbundle(wire.encode_bundle(ORIGIN, [])) == []
