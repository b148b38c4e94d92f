"""NIP-01 replaceable/addressable replacement and NIP-09 deletion, as pure decisions.

Every store asks the same questions inside its own transaction: "does this event replace
the stored versions of its coordinate, or is it superseded or deleted?" and "what does
this kind-5 event delete?". The answers live here so SQLite and Firestore agree exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from relay.core.event import Event, is_addressable, is_replaceable
from relay.core.outcome import Outcome

DELETION_KIND = 5
# ASCII digits only: str.isdigit() accepts "²", which int() refuses.
_KIND = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Coordinate:
    """The slot a replaceable (``d_tag == ""``) or addressable event occupies."""

    kind: int
    pubkey: str
    d_tag: str


@dataclass(frozen=True, slots=True)
class Version:
    """A stored event of one coordinate, as far as replacement cares."""

    event_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """What saving an event of a coordinate does: refuse it (``refused``) or store it
    and remove the ``replaced`` versions."""

    refused: Outcome | None
    replaced: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a kind-5 event deletes: its author's events by id, and every version of its
    author's coordinates created at or before ``until``."""

    pubkey: str
    event_ids: tuple[str, ...]
    coordinates: tuple[Coordinate, ...]
    until: int


def coordinate_of(event: Event) -> Coordinate | None:
    """The event's coordinate if its kind is replaceable or addressable, else None."""
    if is_replaceable(event.kind):
        return Coordinate(event.kind, event.pubkey, "")
    if is_addressable(event.kind):
        return Coordinate(event.kind, event.pubkey, event.d_tag)
    return None


def is_newer(a_created: int, a_id: str, b_created: int, b_id: str) -> bool:
    """NIP-01 replacement order: later ``created_at`` wins; on a tie, the lowest id."""
    return a_created > b_created or (a_created == b_created and a_id < b_id)


def plan_replacement(
    event: Event, stored: Sequence[Version], deleted_until: int | None
) -> Replacement:
    """Decide for ``event`` of a coordinate holding ``stored`` versions.

    ``deleted_until`` is the latest ``created_at`` a NIP-09 ``a`` deletion covered for
    this coordinate (None if never deleted): versions up to it stay deleted.
    """
    if deleted_until is not None and event.created_at <= deleted_until:
        return Replacement(Outcome.DELETED)
    for version in stored:
        if version.event_id == event.id:
            return Replacement(Outcome.DUPLICATE)
        if is_newer(version.created_at, version.event_id, event.created_at, event.id):
            return Replacement(Outcome.SUPERSEDED)
    return Replacement(None, tuple(v.event_id for v in stored))


def parse_coordinate(value: str) -> Coordinate | None:
    """An ``a`` tag value ``kind:pubkey:d`` of a replaceable/addressable kind, or None.

    Replaceable kinds ignore the ``d`` part (their slot has none).
    """
    parts = value.split(":", 2)
    if len(parts) != 3 or not _KIND.fullmatch(parts[0]):
        return None
    kind = int(parts[0])
    if is_replaceable(kind):
        return Coordinate(kind, parts[1], "")
    if is_addressable(kind):
        return Coordinate(kind, parts[1], parts[2])
    return None


def deletion_of(event: Event) -> Deletion | None:
    """For a kind-5 event, what it may delete (only its own author's events), else None."""
    if event.kind != DELETION_KIND:
        return None
    coordinates = []
    for value in event.tag_values("a"):
        coordinate = parse_coordinate(value)
        if coordinate is not None and coordinate.pubkey == event.pubkey:
            coordinates.append(coordinate)
    return Deletion(
        event.pubkey,
        tuple(dict.fromkeys(event.tag_values("e"))),
        tuple(dict.fromkeys(coordinates)),
        event.created_at,
    )


def deletes_event(deletion: Deletion, *, pubkey: str, kind: int) -> bool:
    """True if ``deletion`` may remove a stored event it names by id: the same author,
    and never another deletion."""
    return pubkey == deletion.pubkey and kind != DELETION_KIND
