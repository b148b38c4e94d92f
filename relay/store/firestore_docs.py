"""Firestore document shapes and query plans for the Firestore store (pure, no I/O).

Collections (the README documents them):

``events/{event id}``
    ``pubkey`` str, ``kind`` int, ``created_at`` int, ``expires_at`` int|null (NIP-40 or
    key package expiry), ``tags`` [``"name:value"``] for single-letter tags, ``raw``
    bytes (the event's JSON exactly as received), ``expire_at`` timestamp|null (TTL).
``coordinates/{sha256(kind:pubkey:d)}``
    ``kind``, ``pubkey``, ``d``, ``versions`` [{``id``, ``created_at``}], ``deleted_until``
    int|null: the replaceable/addressable slot, the document every save of that slot
    reads and writes in its transaction.
``deletions/{sha256(pubkey:target)}``
    ``pubkey``, ``target``: a NIP-09 ``e`` tombstone.
``keypackages/{event id}``
    ``owner``, ``created_at``, ``expires_at`` int, ``last_resort`` bool, ``delete_at``
    int|null (durable last-resort deletion), ``expire_at`` timestamp (TTL).
``groups/{sha256(group id)}``
    ``group_id``, ``state`` (``GroupState.to_json()``), ``updated_at`` int.
``relay_health/write-check``
    ``checked_at`` int: the one document the store's write check sets (shared by every
    instance); no query, count or sweep of the relay reads this collection.

Times are integer unix seconds everywhere; the ``expire_at`` timestamps exist only for
Firestore's TTL policies (a backstop: the relay sweeps by the integer fields itself).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.replacement import Coordinate
from relay.mls import kinds

EVENTS = "events"
COORDINATES = "coordinates"
DELETIONS = "deletions"
KEYPACKAGES = "keypackages"
GROUPS = "groups"
HEALTH = "relay_health"
WRITE_CHECK = "write-check"  # the HEALTH document the write check sets

MAX_IN = 30  # values per `in` / `array-contains-any`
MAX_WRITES = 500  # writes per transaction or batch


def hashed_id(*parts: str) -> str:
    """A document id for arbitrary strings (ids cannot contain ``/`` or be too long)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def coordinate_id(c: Coordinate) -> str:
    """The ``coordinates`` document id of a replaceable/addressable slot."""
    return hashed_id(str(c.kind), c.pubkey, c.d_tag)


def tombstone_id(pubkey: str, target: str) -> str:
    """The ``deletions`` document id of ``pubkey``'s deletion of event ``target``."""
    return hashed_id(pubkey, target)


def group_doc_id(group_id: str) -> str:
    """The ``groups`` document id of group ``h``."""
    return hashed_id(group_id)


def timestamp(seconds: int) -> datetime.datetime:
    """A UTC datetime for a TTL field (clamped to what Firestore can store)."""
    seconds = max(0, min(seconds, 253402300799))
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def purge_at(event: Event, expires_at: int | None, archive_ttl: int) -> int | None:
    """When Firestore's TTL may delete the event: its expiry, or its archive deadline."""
    candidates = [] if expires_at is None else [expires_at]
    if event.kind in kinds.ARCHIVED:
        candidates.append(event.created_at + archive_ttl)
    return min(candidates) if candidates else None


def event_doc(event: Event, *, expires_at: int | None, archive_ttl: int) -> dict[str, Any]:
    """The ``events`` document of ``event``."""
    purge = purge_at(event, expires_at, archive_ttl)
    return {
        "pubkey": event.pubkey,
        "kind": event.kind,
        "created_at": event.created_at,
        "expires_at": expires_at,
        "tags": sorted({f"{t[0]}:{t[1]}" for t in event.tags if len(t) > 1 and len(t[0]) == 1}),
        "raw": event.raw,
        "expire_at": None if purge is None else timestamp(purge),
    }


def is_live(doc: dict[str, Any], now: int) -> bool:
    """True unless the document's integer expiry has passed."""
    expires_at = doc.get("expires_at")
    return expires_at is None or int(expires_at) > now


@dataclass(frozen=True)
class QueryPlan:
    """The server-side part of one NIP-01 filter on ``events``.

    ``field``/``op`` with ``chunks`` (each at most :data:`MAX_IN` values) is the one
    disjunction Firestore runs per query; ``equal`` are equality clauses; the time range
    and order are on ``created_at``. Everything else in the filter is checked on the
    returned documents, so a plan may over-fetch but never miss.
    """

    field: str | None
    op: str | None
    chunks: tuple[tuple[Any, ...], ...]
    equal: tuple[tuple[str, Any], ...]
    since: int | None
    until: int | None
    descending: bool
    exact: bool = False  # True when the server-side clauses are the whole filter

    def index_fields(self) -> tuple[tuple[str, str], ...]:
        """The composite index this plan needs, as ``(field, mode)`` pairs in index
        order (``mode`` is ASCENDING, DESCENDING or CONTAINS); empty when Firestore's
        automatic single-field indexes serve it."""
        fields = [(name, "ASCENDING") for name, _ in self.equal]
        if self.field is not None:
            fields.append((self.field, "CONTAINS" if self.op == "array_contains_any" else "ASC"))
        fields = [(n, "ASCENDING" if m == "ASC" else m) for n, m in sorted(fields)]
        if not fields:
            return ()
        return (*fields, ("created_at", "DESCENDING" if self.descending else "ASCENDING"))

    def count_index_fields(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        """The composite indexes the two count queries of an exact plan need (the
        matching events, and those among them already expired): equality/``in`` fields,
        then ``created_at`` when ranged, then ``expires_at``; no order."""
        fields = sorted(
            (name, "CONTAINS" if name == "tags" else "ASCENDING")
            for name in [n for n, _ in self.equal] + ([self.field] if self.field else [])
        )
        if self.since is not None or self.until is not None:
            fields.append(("created_at", "ASCENDING"))
        expired = (*fields, ("expires_at", "ASCENDING"))
        return tuple(index for index in (tuple(fields), expired) if len(index) > 1)


def _chunks(values: Sequence[Any]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(values[i : i + MAX_IN]) for i in range(0, len(values), MAX_IN))


def plan_query(f: Filter, *, oldest_first: bool = False) -> QueryPlan:
    """The server-side plan for ``f`` (``ids`` are fetched by document id instead).
    Authors are the most selective field, then a tag, then kinds; a single kind is added
    as an equality clause next to authors or a tag. ``exact`` says whether the clauses
    are the whole filter (so Firestore can count it without reading documents)."""
    single_kind = (
        (("kind", next(iter(f.kinds))),) if f.kinds is not None and len(f.kinds) == 1 else ()
    )
    field: str | None = None
    op: str | None = None
    chunks: tuple[tuple[Any, ...], ...] = ()
    equal: tuple[tuple[str, Any], ...] = ()
    kinds_covered = f.kinds is None or bool(single_kind)
    if f.authors is not None:
        field, op, chunks, equal = "pubkey", "in", _chunks(sorted(f.authors)), single_kind
        exact = kinds_covered and not f.tags
    elif f.tags:
        name, values = min(f.tags, key=lambda tag: (len(tag[1]), tag[0]))
        field, op = "tags", "array_contains_any"
        chunks, equal = _chunks(sorted(f"{name}:{v}" for v in values)), single_kind
        exact = kinds_covered and len(f.tags) == 1
    elif f.kinds is not None:
        field, op, chunks = "kind", "in", _chunks(sorted(f.kinds))
        exact = True
    else:
        exact = True
    exact = exact and f.ids is None
    return QueryPlan(field, op, chunks, equal, f.since, f.until, not oldest_first, exact)


def archive_plans() -> tuple[QueryPlan, ...]:
    """The sweeper's archive query (kind in ARCHIVED, created_at before a bound)."""
    return (QueryPlan("kind", "in", (tuple(sorted(kinds.ARCHIVED)),), (), None, None, False),)
