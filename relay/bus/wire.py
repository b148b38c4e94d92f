"""What travels on the bus, and its byte encoding (pure).

A message is one type byte, the 32-hex-digit id of the instance that sent it, and a
payload: the event JSON exactly as stored (``E``) or a group state as JSON (``G``).
The event bytes are forwarded unchanged, so fan-out on the receiving instance sends
the same bytes a local subscriber gets.

A bundle (``B``) carries several messages of one instance, in order, each preceded by
its length (4 bytes, big-endian): a bus sends what queued during one round trip as one
bundle, and a receiver reads the header once to skip its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from relay.core.event import Event, event_from_raw
from relay.mls.groups import GroupState

ORIGIN_LENGTH = 32
_EVENT = b"E"
_GROUP = b"G"
_BUNDLE = b"B"
_LENGTH_BYTES = 4


@dataclass(frozen=True)
class EventMessage:
    """An accepted event, for the receiving instance's live subscribers."""

    origin: str
    event: Event


@dataclass(frozen=True)
class GroupMessage:
    """A group's state after a committed change, for the receiving instance's directory."""

    origin: str
    state: GroupState


BusMessage = EventMessage | GroupMessage


class MalformedMessage(ValueError):
    """Bytes on the bus that are not a message of this version."""


def _head(kind: bytes, origin: str) -> bytes:
    if len(origin) != ORIGIN_LENGTH:
        raise ValueError(f"origin must be {ORIGIN_LENGTH} characters")
    return kind + origin.encode("ascii")


def encode_event(origin: str, event: Event) -> bytes:
    """The bus message carrying ``event`` from instance ``origin``."""
    return _head(_EVENT, origin) + event.raw


def encode_group(origin: str, state: GroupState) -> bytes:
    """The bus message carrying ``state`` from instance ``origin``."""
    return _head(_GROUP, origin) + orjson.dumps(state.to_json())


def encode_bundle(origin: str, messages: Sequence[bytes]) -> bytes:
    """One bus message carrying ``messages`` (each one encoded here) from ``origin``."""
    parts = [_head(_BUNDLE, origin)]
    for message in messages:
        parts.append(len(message).to_bytes(_LENGTH_BYTES, "big"))
        parts.append(message)
    return b"".join(parts)


def is_bundle(data: bytes) -> bool:
    """Whether ``data`` is a bundle (read :func:`unbundle`) rather than one message."""
    return data[:1] == _BUNDLE


def unbundle(data: bytes) -> list[bytes]:
    """The messages of a bundle, in order; raises :class:`MalformedMessage` if its
    lengths do not add up."""
    view = memoryview(data)
    at = 1 + ORIGIN_LENGTH
    if len(data) < at or not is_bundle(data):
        raise MalformedMessage("not a bundle")
    messages = []
    while at < len(data):
        end = at + _LENGTH_BYTES
        if end > len(data):
            raise MalformedMessage("truncated bundle")
        size = int.from_bytes(view[at:end], "big")
        at = end + size
        if at > len(data):
            raise MalformedMessage("truncated bundle")
        messages.append(bytes(view[end:at]))
    return messages


def sent_by(data: bytes, origin: str) -> bool:
    """Whether ``data`` carries the header of instance ``origin``, read without decoding
    its payload (an instance skips its own messages coming back at this cost)."""
    return data[1 : 1 + ORIGIN_LENGTH] == origin.encode("ascii")


def decode(data: bytes) -> BusMessage:
    """Parse a bus message; raises :class:`MalformedMessage` for anything else."""
    kind, origin_bytes, payload = data[:1], data[1 : 1 + ORIGIN_LENGTH], data[1 + ORIGIN_LENGTH :]
    try:
        origin = origin_bytes.decode("ascii")
        if len(origin) != ORIGIN_LENGTH:
            raise MalformedMessage("truncated bus message")
        if kind == _EVENT:
            return EventMessage(origin, event_from_raw(payload))
        if kind == _GROUP:
            return GroupMessage(origin, GroupState.from_json(orjson.loads(payload)))
    except MalformedMessage:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedMessage(f"undecodable bus message: {exc}") from exc
    raise MalformedMessage(f"unknown bus message type {kind!r}")
