"""Nostr events: the frozen model, NIP-01 canonical id, BIP-340 signatures, kind classes.

:func:`parse_event` turns untrusted JSON (already decoded) into an :class:`Event` or a
:class:`~relay.core.reasons.Rejection`; it never raises on bad input.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NewType

import orjson
from coincurve import PrivateKey, PublicKeyXOnly

from relay.core.reasons import Rejection, invalid

EventId = NewType("EventId", str)
Pubkey = NewType("Pubkey", str)

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"[0-9a-f]{128}\Z")
# ASCII digits only (str.isdigit accepts "²", which int() refuses), within int64.
_UINT = re.compile(r"[0-9]{1,18}\Z")

MAX_KIND = 65535
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Event:
    """A signed Nostr event as received. ``raw`` is its JSON, sent back to readers verbatim."""

    id: EventId
    pubkey: Pubkey
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str
    sig: str
    raw: bytes = field(repr=False, compare=False)

    def tag_values(self, name: str) -> list[str]:
        """Second elements of every tag called ``name`` (e.g. all ``p`` pubkeys)."""
        return [t[1] for t in self.tags if len(t) > 1 and t[0] == name]

    def first_tag_value(self, name: str) -> str | None:
        """The value of the first tag called ``name``, or None."""
        for t in self.tags:
            if len(t) > 1 and t[0] == name:
                return t[1]
        return None

    def has_tag(self, name: str) -> bool:
        """True if any tag is called ``name`` (also for single-element tags like ``["-"]``)."""
        return any(t and t[0] == name for t in self.tags)

    @property
    def d_tag(self) -> str:
        """The ``d`` identifier of an addressable event ('' when absent, as NIP-01 says)."""
        return self.first_tag_value("d") or ""

    @property
    def expiration(self) -> int | None:
        """NIP-40 expiration timestamp, or None if absent or not an integer."""
        return parse_uint(self.first_tag_value("expiration"))

    @property
    def is_protected(self) -> bool:
        """NIP-70: carries a ``["-"]`` tag."""
        return any(len(t) == 1 and t[0] == "-" for t in self.tags)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (NIP-01 field names)."""
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": [list(t) for t in self.tags],
            "content": self.content,
            "sig": self.sig,
        }


def parse_uint(value: str | None) -> int | None:
    """A tag value as a non-negative integer, or None if absent or not plain decimal
    digits (at most 18, so it fits a signed 64-bit integer in SQLite and JSON)."""
    if value is None or not _UINT.match(value):
        return None
    return int(value)


def is_replaceable(kind: int) -> bool:
    """Kinds 0, 3 and 10000–19999 keep only the newest event per (pubkey, kind)."""
    return kind in (0, 3) or 10000 <= kind < 20000


def is_ephemeral(kind: int) -> bool:
    """Kinds 20000–29999 are fanned out and never stored."""
    return 20000 <= kind < 30000


def is_addressable(kind: int) -> bool:
    """Kinds 30000–39999 keep only the newest event per (pubkey, kind, d)."""
    return 30000 <= kind < 40000


def canonical_json(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> bytes:
    """NIP-01 serialisation ``[0,pubkey,created_at,kind,tags,content]``.

    orjson writes UTF-8 without ``\\u`` escapes for non-ASCII, escapes exactly the
    characters JSON requires, and never escapes ``/``: the same bytes as
    ``JSON.stringify`` in the reference clients.
    """
    return orjson.dumps([0, pubkey, created_at, kind, tags, content])


def compute_id(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> str:
    """sha256 of the canonical serialisation, lowercase hex."""
    return hashlib.sha256(canonical_json(pubkey, created_at, kind, tags, content)).hexdigest()


@functools.lru_cache(maxsize=16384)
def _xonly_key(pubkey: str) -> PublicKeyXOnly | None:
    # Parsing a key costs about half as much as verifying with it, and most events come
    # from keys seen recently.
    try:
        return PublicKeyXOnly(bytes.fromhex(pubkey))
    except ValueError:  # not a point on the curve
        return None


def verify_signature(event_id: str, pubkey: str, sig: str) -> bool:
    """BIP-340 Schnorr verification of ``sig`` over the 32-byte id by the x-only ``pubkey``."""
    key = _xonly_key(pubkey)
    if key is None:
        return False
    try:
        return bool(key.verify(bytes.fromhex(sig), bytes.fromhex(event_id)))
    except ValueError:
        return False


def verify_signatures(events: Sequence[Event]) -> list[bool]:
    """:func:`verify_signature` of each event, in order (one call to hand to a thread:
    coincurve releases the GIL while it verifies)."""
    return [verify_signature(e.id, e.pubkey, e.sig) for e in events]


def parse_event(obj: object, *, verify: bool = True) -> Event | Rejection:
    """Check shape, id and signature of a decoded event object.

    Returns the :class:`Event`, or an ``invalid:`` :class:`Rejection` naming the first
    problem found. Never raises on malformed input.
    """
    if not isinstance(obj, dict):
        return invalid("event must be a JSON object")
    try:
        event_id = obj["id"]
        pubkey = obj["pubkey"]
        created_at = obj["created_at"]
        kind = obj["kind"]
        tags = obj["tags"]
        content = obj["content"]
        sig = obj["sig"]
    except KeyError as exc:
        return invalid(f"missing field {exc.args[0]}")
    if not isinstance(event_id, str) or not _HEX64.match(event_id):
        return invalid("id must be 64 lowercase hex characters")
    if not isinstance(pubkey, str) or not _HEX64.match(pubkey):
        return invalid("pubkey must be 64 lowercase hex characters")
    if not isinstance(sig, str) or not _HEX128.match(sig):
        return invalid("sig must be 128 lowercase hex characters")
    if type(created_at) is not int or not 0 <= created_at <= MAX_INT64:
        return invalid("created_at must be a non-negative integer")
    if type(kind) is not int or not 0 <= kind <= MAX_KIND:
        return invalid(f"kind must be an integer between 0 and {MAX_KIND}")
    if not isinstance(content, str):
        return invalid("content must be a string")
    if not isinstance(tags, list):
        return invalid("tags must be an array of arrays of strings")
    for tag in tags:
        if not isinstance(tag, list) or not all(type(v) is str for v in tag):
            return invalid("tags must be an array of arrays of strings")
    try:
        canonical = canonical_json(pubkey, created_at, kind, tags, content)
    except orjson.JSONEncodeError:  # lone surrogates and other unencodable strings
        return invalid("event is not valid UTF-8 JSON")
    if hashlib.sha256(canonical).hexdigest() != event_id:
        return invalid("event id does not match its content")
    if verify and not verify_signature(event_id, pubkey, sig):
        return invalid("bad signature")
    frozen_tags = tuple(tuple(t) for t in tags)
    raw = orjson.dumps(
        {
            "id": event_id,
            "pubkey": pubkey,
            "created_at": created_at,
            "kind": kind,
            "tags": tags,
            "content": content,
            "sig": sig,
        }
    )
    return Event(
        EventId(event_id), Pubkey(pubkey), created_at, kind, frozen_tags, content, sig, raw
    )


def event_from_raw(raw: bytes) -> Event:
    """Rebuild an :class:`Event` from JSON this relay stored itself (trusted, not re-verified)."""
    obj = orjson.loads(raw)
    return Event(
        EventId(obj["id"]),
        Pubkey(obj["pubkey"]),
        obj["created_at"],
        obj["kind"],
        tuple(tuple(t) for t in obj["tags"]),
        obj["content"],
        obj["sig"],
        raw,
    )


def sign_event(
    secret: bytes,
    *,
    kind: int,
    content: str = "",
    tags: list[list[str]] | None = None,
    created_at: int,
) -> Event:
    """Build and sign an event with a 32-byte secret key (for probes, tests and benchmarks)."""
    key = PrivateKey(secret)
    pubkey = PublicKeyXOnly.from_secret(key.secret).format().hex()
    tag_list = tags or []
    event_id = compute_id(pubkey, created_at, kind, tag_list, content)
    sig = key.sign_schnorr(bytes.fromhex(event_id)).hex()
    result = parse_event(
        {
            "id": event_id,
            "pubkey": pubkey,
            "created_at": created_at,
            "kind": kind,
            "tags": tag_list,
            "content": content,
            "sig": sig,
        },
        verify=False,
    )
    assert isinstance(result, Event)
    return result


def pubkey_of(secret: bytes) -> Pubkey:
    """The x-only public key (hex) of a 32-byte secret key."""
    return Pubkey(PublicKeyXOnly.from_secret(secret).format().hex())
