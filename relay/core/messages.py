"""NIP-01 wire messages: decode client frames into typed messages, encode relay frames.

:func:`parse_client_message` never raises: anything it cannot understand becomes a
:class:`Malformed` carrying the NOTICE text (or the OK/CLOSED it should produce).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NewType

import orjson

from relay.core.filters import Filter, parse_filter
from relay.core.reasons import Rejection

SubId = NewType("SubId", str)


@dataclass(frozen=True, slots=True)
class EventMessage:
    """``["EVENT", {...}]``: the event object is validated later by the session."""

    event: object


@dataclass(frozen=True, slots=True)
class ReqMessage:
    """``["REQ", sub_id, filter...]``."""

    sub_id: SubId
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class CountMessage:
    """``["COUNT", sub_id, filter...]`` (NIP-45)."""

    sub_id: SubId
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class CloseMessage:
    """``["CLOSE", sub_id]``."""

    sub_id: SubId


@dataclass(frozen=True, slots=True)
class AuthMessage:
    """``["AUTH", {...}]`` (NIP-42): a signed kind-22242 event, validated by the session."""

    event: object


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame the relay could not accept.

    ``sub_id`` is set when the frame named a subscription (answer with CLOSED);
    ``event_id`` when it carried an event id (answer with OK false); else a NOTICE.
    ``verb`` is the frame's command when it was a REQ or COUNT.
    """

    detail: str
    sub_id: SubId | None = None
    event_id: str | None = None
    rejection: Rejection | None = None
    verb: str | None = None


ClientMessage = EventMessage | ReqMessage | CountMessage | CloseMessage | AuthMessage | Malformed


def _sub_id(value: object) -> SubId | None:
    return SubId(value) if isinstance(value, str) else None


def _parse_filters(
    verb: str, sub_id: SubId, raw_filters: list[object]
) -> tuple[Filter, ...] | Malformed:
    if not raw_filters:
        return Malformed(f"{verb} needs at least one filter", sub_id=sub_id, verb=verb)
    filters = []
    for raw in raw_filters:
        parsed = parse_filter(raw)
        if isinstance(parsed, Rejection):
            return Malformed(parsed.detail, sub_id=sub_id, rejection=parsed, verb=verb)
        filters.append(parsed)
    return tuple(filters)


def parse_client_message(frame: bytes | str) -> ClientMessage:
    """Decode one WebSocket text frame from a client into a :data:`ClientMessage`."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return Malformed("could not parse message as JSON")
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        return Malformed("message must be a JSON array starting with a command string")
    verb = msg[0]
    if verb == "EVENT":
        if len(msg) != 2:
            return Malformed("EVENT takes exactly one event")
        event = msg[1]
        if not isinstance(event, dict):
            return Malformed("EVENT must carry a JSON object")
        return EventMessage(event)
    if verb in ("REQ", "COUNT"):
        if len(msg) < 2 or not isinstance(msg[1], str):
            return Malformed(f"{verb} needs a subscription id string")
        sub_id = SubId(msg[1])
        filters = _parse_filters(verb, sub_id, msg[2:])
        if isinstance(filters, Malformed):
            return filters
        return ReqMessage(sub_id, filters) if verb == "REQ" else CountMessage(sub_id, filters)
    if verb == "CLOSE":
        sub = _sub_id(msg[1]) if len(msg) == 2 else None
        if sub is None:
            return Malformed("CLOSE takes exactly one subscription id string")
        return CloseMessage(sub)
    if verb == "AUTH":
        if len(msg) != 2 or not isinstance(msg[1], dict):
            return Malformed("AUTH must carry one signed event object")
        return AuthMessage(msg[1])
    return Malformed(f"unknown command {verb[:32]!r}")


def event_id_hint(obj: object) -> str | None:
    """The ``id`` field of an untrusted event object, if it is a string (for OK replies)."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None


# --- relay -> client -----------------------------------------------------------------


def encode_event(sub_id: str, raw_event: bytes) -> bytes:
    """``["EVENT", sub_id, event]`` reusing the stored JSON of the event."""
    return b'["EVENT",' + orjson.dumps(sub_id) + b"," + raw_event + b"]"


def encode_events(sub_id: str, raw_events: Iterable[bytes]) -> Iterator[bytes]:
    """:func:`encode_event` for each of ``raw_events`` (the prefix is encoded once)."""
    head = b'["EVENT",' + orjson.dumps(sub_id) + b","
    for raw in raw_events:
        yield head + raw + b"]"


def encode_ok(event_id: str, accepted: bool, message: str = "") -> bytes:
    """``["OK", event_id, accepted, message]``."""
    return orjson.dumps(["OK", event_id, accepted, message])


def encode_eose(sub_id: str) -> bytes:
    """``["EOSE", sub_id]``."""
    return orjson.dumps(["EOSE", sub_id])


def encode_closed(sub_id: str, message: str) -> bytes:
    """``["CLOSED", sub_id, message]``."""
    return orjson.dumps(["CLOSED", sub_id, message])


def encode_notice(message: str) -> bytes:
    """``["NOTICE", message]``."""
    return orjson.dumps(["NOTICE", message])


def encode_auth(challenge: str) -> bytes:
    """``["AUTH", challenge]``."""
    return orjson.dumps(["AUTH", challenge])


def encode_count(sub_id: str, count: int, *, approximate: bool = False) -> bytes:
    """``["COUNT", sub_id, {"count": n}]``, with ``"approximate": true`` when capped."""
    body: dict[str, object] = {"count": count}
    if approximate:
        body["approximate"] = True
    return orjson.dumps(["COUNT", sub_id, body])
