"""Events in Firestore: the NIP-01/09/40 save transaction and paginated filter queries.

Every function takes the client (or a transaction) and raises the library's own errors;
:mod:`relay.store.firestore` translates them at the boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.async_aggregation import AsyncAggregationQuery
from google.cloud.firestore_v1.async_collection import AsyncCollectionReference
from google.cloud.firestore_v1.async_query import AsyncQuery
from google.cloud.firestore_v1.base_query import FieldFilter

from relay.core.event import Event, event_from_raw
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.replacement import (
    Deletion,
    Version,
    coordinate_of,
    deletes_event,
    deletion_of,
    plan_replacement,
)
from relay.store.firestore_docs import (
    COORDINATES,
    DELETIONS,
    EVENTS,
    KEYPACKAGES,
    MAX_WRITES,
    QueryPlan,
    coordinate_id,
    event_doc,
    is_live,
    plan_query,
    tombstone_id,
)

PAGE = 300  # documents per query page
GET_CHUNK = 100  # document references per batched get
# Writes a deletion may make besides storing itself: two per target (tombstone + event,
# + coordinate/key package bookkeeping), kept well under Firestore's 500.
DELETION_TARGETS_PER_TRANSACTION = (MAX_WRITES - 20) // 4

Doc = dict[str, Any]
Client = firestore.AsyncClient
Transaction = firestore.AsyncTransaction


@dataclass
class Writes:
    """Writes decided inside a transaction, applied once all reads are done."""

    sets: list[tuple[Any, Doc]] = field(default_factory=list)
    deletes: list[Any] = field(default_factory=list)

    def apply(self, transaction: Transaction) -> None:
        """Queue every write on ``transaction``, each document once (a deletion may
        name the same event by id and by coordinate)."""
        for ref, doc in self.sets:
            transaction.set(ref, doc)
        deleted = {ref.path: ref for ref in self.deletes}
        for ref in deleted.values():
            transaction.delete(ref)


async def get_docs(
    client: Client, refs: Sequence[Any], transaction: Transaction | None = None
) -> dict[str, Doc]:
    """Existing documents among ``refs`` by document id (batched gets)."""
    found: dict[str, Doc] = {}
    for start in range(0, len(refs), GET_CHUNK):
        chunk = list(refs[start : start + GET_CHUNK])
        async for snap in client.get_all(chunk, transaction=transaction):
            if snap.exists:
                found[snap.id] = snap.to_dict() or {}
    return found


def delete_event_writes(client: Client, event_id: str, doc: Doc, writes: Writes) -> None:
    """Delete a stored event with its key package bookkeeping (coordinates are cleaned
    lazily: a version whose event is gone is ignored by the next save of that slot)."""
    writes.deletes.append(client.collection(EVENTS).document(event_id))
    if doc.get("kind") == 443:
        writes.deletes.append(client.collection(KEYPACKAGES).document(event_id))


async def plan_save(
    client: Client,
    transaction: Transaction,
    event: Event,
    *,
    expires_at: int | None,
    archive_ttl: int,
    deletion_part: Deletion | None = None,
) -> tuple[Outcome, Writes]:
    """Read what saving ``event`` depends on and decide the writes (not applied yet).

    For a kind 5, ``deletion_part`` is the part of its deletion applied in this
    transaction (None: all of it; see :func:`split_deletion`).
    """
    events = client.collection(EVENTS)
    reads: list[Any] = [
        events.document(event.id),
        client.collection(DELETIONS).document(tombstone_id(event.pubkey, event.id)),
    ]
    coordinate = coordinate_of(event)
    coordinate_ref = None
    if coordinate is not None:
        coordinate_ref = client.collection(COORDINATES).document(coordinate_id(coordinate))
        reads.append(coordinate_ref)
    deletion = deletion_part or deletion_of(event)
    found = await get_docs(client, reads, transaction)
    writes = Writes()
    if event.id in found:
        return Outcome.DUPLICATE, writes
    if tombstone_id(event.pubkey, event.id) in found:
        return Outcome.DELETED, writes
    if coordinate is not None and coordinate_ref is not None:
        slot = found.get(coordinate_ref.id, {})
        versions = await _live_versions(client, transaction, slot)
        plan = plan_replacement(event, versions, slot.get("deleted_until"))
        if plan.refused is not None:
            return plan.refused, writes
        for version_id in plan.replaced:
            delete_event_writes(client, version_id, {}, writes)
        writes.sets.append(
            (
                coordinate_ref,
                {
                    "kind": coordinate.kind,
                    "pubkey": coordinate.pubkey,
                    "d": coordinate.d_tag,
                    "versions": [{"id": event.id, "created_at": event.created_at}],
                    "deleted_until": slot.get("deleted_until"),
                },
            )
        )
    if deletion is not None:
        await plan_deletion(client, transaction, deletion, writes)
    doc = event_doc(event, expires_at=expires_at, archive_ttl=archive_ttl)
    writes.sets.append((events.document(event.id), doc))
    return Outcome.STORED, writes


async def _live_versions(client: Client, transaction: Transaction, slot: Doc) -> list[Version]:
    versions = [Version(v["id"], int(v["created_at"])) for v in slot.get("versions", [])]
    if not versions:
        return []
    refs = [client.collection(EVENTS).document(v.event_id) for v in versions]
    existing = await get_docs(client, refs, transaction)
    return [v for v in versions if v.event_id in existing]


def split_deletion(
    deletion: Deletion, size: int = DELETION_TARGETS_PER_TRANSACTION
) -> list[Deletion]:
    """``deletion`` in parts of at most ``size`` targets (ids and coordinates), so that
    each part's writes fit in one transaction; the last part goes with the event itself."""
    ids, coords = deletion.event_ids, deletion.coordinates
    parts = []
    for start in range(0, max(1, len(ids) + len(coords)), size):
        stop = start + size
        parts.append(
            Deletion(
                deletion.pubkey,
                ids[start:stop],
                coords[max(0, start - len(ids)) : max(0, stop - len(ids))],
                deletion.until,
            )
        )
    return parts


async def plan_deletion(
    client: Client, transaction: Transaction, deletion: Deletion, writes: Writes
) -> None:
    """NIP-09: tombstones for every ``e`` target, removal of the author's targets (never
    other deletions) and of every version of the author's ``a`` coordinates up to the
    deletion's time."""
    events = client.collection(EVENTS)
    coordinates = client.collection(COORDINATES)
    targets = await get_docs(client, [events.document(t) for t in deletion.event_ids], transaction)
    slot_refs = [coordinates.document(coordinate_id(c)) for c in deletion.coordinates]
    slots = await get_docs(client, slot_refs, transaction)
    for target in deletion.event_ids:
        writes.sets.append(
            (
                client.collection(DELETIONS).document(tombstone_id(deletion.pubkey, target)),
                {"pubkey": deletion.pubkey, "target": target},
            )
        )
        doc = targets.get(target)
        if doc is not None and deletes_event(deletion, pubkey=doc["pubkey"], kind=doc["kind"]):
            delete_event_writes(client, target, doc, writes)
    for c, ref in zip(deletion.coordinates, slot_refs, strict=True):
        slot = slots.get(ref.id, {})
        kept = []
        for version in slot.get("versions", []):
            if int(version["created_at"]) <= deletion.until:
                delete_event_writes(client, version["id"], {}, writes)
            else:
                kept.append(version)
        until = max(int(slot.get("deleted_until") or 0), deletion.until)
        writes.sets.append(
            (
                ref,
                {
                    "kind": c.kind,
                    "pubkey": c.pubkey,
                    "d": c.d_tag,
                    "versions": kept,
                    "deleted_until": until,
                },
            )
        )


# --- queries ---------------------------------------------------------------------------


def _base_query(
    client: Client, plan: QueryPlan, chunk: tuple[Any, ...] | None, *, ordered: bool = True
) -> AsyncQuery:
    query: AsyncQuery = client.collection(EVENTS)  # type: ignore[assignment]
    for name, value in plan.equal:
        query = query.where(filter=FieldFilter(name, "==", value))
    if plan.field is not None and chunk is not None:
        query = query.where(filter=FieldFilter(plan.field, plan.op or "in", list(chunk)))
    if plan.since is not None:
        query = query.where(filter=FieldFilter("created_at", ">=", plan.since))
    if plan.until is not None:
        query = query.where(filter=FieldFilter("created_at", "<=", plan.until))
    if not ordered:
        return query
    direction = AsyncQuery.DESCENDING if plan.descending else AsyncQuery.ASCENDING
    return query.order_by("created_at", direction=direction)


async def scan(
    query: AsyncQuery | AsyncCollectionReference, page: int = PAGE
) -> AsyncIterator[Any]:
    """Every document of ``query`` in its order, one bounded page per request.

    Stops if a page brings nothing new (an emulator that ignores cursors).
    """
    cursor = None
    seen: set[str] = set()
    while True:
        paged = query.limit(page)
        if cursor is not None:
            paged = paged.start_after(cursor)
        snaps = [snap async for snap in paged.stream()]
        fresh = [snap for snap in snaps if snap.id not in seen]
        for snap in fresh:
            seen.add(snap.id)
            yield snap
        if len(snaps) < page or not fresh:
            return
        cursor = snaps[-1]


async def count_exactly(client: Client, f: Filter, now: int) -> int | None:
    """Live events matching ``f`` counted by Firestore aggregation queries (no documents
    read), or None when ``f`` needs checks Firestore cannot run (then scan instead).

    Expired-but-unswept events are subtracted with a second count per chunk. Chunks of
    ``tags`` may overlap (one event, two values), so only a single chunk is counted.
    """
    if f.is_empty_by_construction:
        return 0
    plan = plan_query(f)
    if not plan.exact or (plan.op == "array_contains_any" and len(plan.chunks) > 1):
        return None
    total = 0
    for chunk in plan.chunks or (None,):
        query = _base_query(client, plan, chunk, ordered=False)
        expired = query.where(filter=FieldFilter("expires_at", "<=", now))
        total += await _aggregate(query) - await _aggregate(expired)
    return total


async def _aggregate(query: AsyncQuery) -> int:
    # The library annotates count() as returning the class, not an instance.
    aggregation: AsyncAggregationQuery = query.count(alias="n")  # type: ignore[assignment]
    results = await aggregation.get()
    return sum(int(result.value) for batch in results for result in batch)


def _page_for(limit: int | None) -> int:
    return PAGE if limit is None else max(20, min(PAGE, limit + 10))


Found = dict[str, tuple[int, bytes]]


async def query_filter(client: Client, f: Filter, now: int, *, oldest_first: bool) -> Found:
    """Up to ``f.limit`` live events matching ``f`` (newest first, ties by lowest id;
    or oldest first), as ``id -> (created_at, raw)``."""
    if f.is_empty_by_construction or f.limit == 0:
        return {}
    if f.ids is not None:
        refs = [client.collection(EVENTS).document(i) for i in sorted(f.ids)]
        docs = await get_docs(client, refs)
        hits = [(i, d) for i, d in docs.items() if _matches(f, d, now)]
        return _cut(
            [(int(d["created_at"]), i, bytes(d["raw"])) for i, d in hits], f.limit, oldest_first
        )
    plan = plan_query(f, oldest_first=oldest_first)
    chunks: tuple[tuple[Any, ...] | None, ...] = plan.chunks or (None,)
    rows: list[tuple[int, str, bytes]] = []
    for chunk in chunks:
        rows += await _collect(_base_query(client, plan, chunk), f, now, oldest_first)
    return _cut(rows, f.limit, oldest_first)


async def _collect(
    query: AsyncQuery, f: Filter, now: int, oldest_first: bool
) -> list[tuple[int, str, bytes]]:
    """Matching rows of one query, stopping once ``f.limit`` is certain: newest-first
    pages come in id-descending order within a second, so the whole last second is read
    before the lowest ids can be chosen."""
    rows: list[tuple[int, str, bytes]] = []
    boundary: int | None = None
    async for snap in scan(query, _page_for(f.limit)):
        doc = snap.to_dict() or {}
        created_at = int(doc["created_at"])
        if boundary is not None and (oldest_first or created_at != boundary):
            break
        if _matches(f, doc, now):
            rows.append((created_at, snap.id, bytes(doc["raw"])))
            if f.limit is not None and len(rows) >= f.limit and boundary is None:
                boundary = created_at
                if oldest_first:
                    break
    return rows


def _matches(f: Filter, doc: Doc, now: int) -> bool:
    if not is_live(doc, now):
        return False
    return f.matches(event_from_raw(bytes(doc["raw"])))


def _cut(rows: list[tuple[int, str, bytes]], limit: int | None, oldest_first: bool) -> Found:
    sign = 1 if oldest_first else -1
    rows.sort(key=lambda r: (sign * r[0], r[1]))
    if limit is not None:
        rows = rows[:limit]
    return {event_id: (created_at, raw) for created_at, event_id, raw in rows}
