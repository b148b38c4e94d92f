"""MLS gateway state in Firestore: key packages and groups, decided inside transactions
by the same pure functions the SQLite store uses (``plan_fetch``, ``evictions``, the
group transitions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from relay.core.event import Event, event_from_raw
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.mls.groups import GroupState
from relay.mls.keypackages import StoredKeyPackage, evictions, plan_fetch
from relay.store.base import GroupTransition, KeyPackageSaved, ServedKeyPackage
from relay.store.firestore_docs import (
    EVENTS,
    GROUPS,
    KEYPACKAGES,
    group_doc_id,
    timestamp,
)
from relay.store.firestore_events import (
    Client,
    Doc,
    Transaction,
    Writes,
    delete_event_writes,
    get_docs,
    plan_save,
)

KP_KIND = 443
# Key packages one author can touch in a fetch: at most 2 served, so at most 4 writes.
AUTHORS_PER_TRANSACTION = 100


async def _owned(client: Client, transaction: Transaction, owner: str) -> dict[str, Doc]:
    query = client.collection(KEYPACKAGES).where(filter=FieldFilter("owner", "==", owner))
    return {snap.id: snap.to_dict() or {} async for snap in query.stream(transaction=transaction)}


def _stored(event_id: str, doc: Doc) -> StoredKeyPackage:
    return StoredKeyPackage(
        event_id,
        doc["owner"],
        int(doc["created_at"]),
        int(doc["expires_at"]),
        doc.get("delete_at") is not None,
    )


async def save_keypackage(
    client: Client,
    transaction: Transaction,
    event: Event,
    *,
    expires_at: int,
    max_per_owner: int,
    grace: int,
    now: int,
    archive_ttl: int,
) -> KeyPackageSaved:
    """Store a 443, schedule the owner's served last resort, evict beyond the cap."""
    outcome, writes = await plan_save(
        client, transaction, event, expires_at=expires_at, archive_ttl=archive_ttl
    )
    if outcome is not Outcome.STORED:
        return KeyPackageSaved(outcome)
    owned = await _owned(client, transaction, event.pubkey)
    keypackages = client.collection(KEYPACKAGES)
    scheduled = 0
    for event_id, doc in owned.items():
        if doc.get("last_resort") and event_id != event.id:
            due = doc.get("delete_at")
            if due is None:
                due = now + grace
                scheduled += 1
            writes.sets.append(
                (keypackages.document(event_id), {**doc, "last_resort": False, "delete_at": due})
            )
            owned[event_id] = {**doc, "delete_at": due}
    owned[event.id] = {
        "owner": event.pubkey,
        "created_at": event.created_at,
        "expires_at": expires_at,
    }
    live = [
        _stored(i, d)
        for i, d in owned.items()
        if int(d["expires_at"]) > now and d.get("delete_at") is None
    ]
    evicted = evictions(live, max_per_owner=max_per_owner)
    writes.sets.append(
        (
            keypackages.document(event.id),
            {
                "owner": event.pubkey,
                "created_at": event.created_at,
                "expires_at": expires_at,
                "last_resort": False,
                "delete_at": None,
                "expire_at": timestamp(expires_at),
            },
        )
    )
    # A new key package older than the owner's others may be evicted at once.
    gone = {
        client.collection(name).document(i).path for i in evicted for name in (EVENTS, KEYPACKAGES)
    }
    writes.sets = [(ref, doc) for ref, doc in writes.sets if ref.path not in gone]
    for event_id in evicted:
        delete_event_writes(client, event_id, {"kind": KP_KIND}, writes)
    writes.apply(transaction)
    return KeyPackageSaved(Outcome.STORED, len(evicted), scheduled)


async def take_keypackages(
    client: Client,
    transaction: Transaction,
    authors: Sequence[str],
    *,
    per_author: int,
    consume: bool,
    now: int,
    where: Filter | None,
) -> list[ServedKeyPackage]:
    """R-M1b for each of ``authors`` (at most :data:`AUTHORS_PER_TRANSACTION`)."""
    owned = {author: await _owned(client, transaction, author) for author in authors}
    refs = [
        client.collection(EVENTS).document(event_id)
        for docs in owned.values()
        for event_id, doc in docs.items()
        if int(doc["expires_at"]) > now
    ]
    raws = await get_docs(client, refs, transaction)
    events = {event_id: event_from_raw(bytes(doc["raw"])) for event_id, doc in raws.items()}
    served: list[ServedKeyPackage] = []
    writes = Writes()
    for docs in owned.values():
        # Every key package the owner holds counts for the last-resort rule; the filter
        # only narrows what may be served (plan_fetch's ``matching``).
        held = [_stored(event_id, doc) for event_id, doc in docs.items() if event_id in events]
        matching = (
            None
            if where is None
            else {kp.event_id for kp in held if where.matches(events[kp.event_id])}
        )
        plan = plan_fetch(held, per_author=per_author, now=now, consume=consume, matching=matching)
        consumed = set(plan.consume)
        served += [ServedKeyPackage(events[i], i in consumed) for i in plan.serve]
        for event_id in plan.consume:
            delete_event_writes(client, event_id, {"kind": KP_KIND}, writes)
        if plan.last_resort is not None and consume:
            doc = docs[plan.last_resort]
            writes.sets.append(
                (
                    client.collection(KEYPACKAGES).document(plan.last_resort),
                    {**doc, "last_resort": True},
                )
            )
    writes.apply(transaction)
    return served


async def save_group_event(
    client: Client,
    transaction: Transaction,
    event: Event,
    transition: GroupTransition,
    now: int,
    archive_ttl: int,
) -> tuple[Outcome | Rejection, GroupState | None]:
    """Load group ``h``, run ``transition``, store the event and the new state."""
    group_id = event.first_tag_value("h") or ""
    group_ref = client.collection(GROUPS).document(group_doc_id(group_id))
    before = None
    if group_id:
        snap = await group_ref.get(transaction=transaction)
        if snap.exists:
            before = GroupState.from_json((snap.to_dict() or {})["state"])
    after = transition(before)
    if isinstance(after, Rejection):
        return after, None
    outcome, writes = await plan_save(
        client, transaction, event, expires_at=event.expiration, archive_ttl=archive_ttl
    )
    if outcome is not Outcome.STORED:
        return outcome, None
    changed = after is not None and after != before
    if after is not None and changed:
        writes.sets.append(
            (
                client.collection(GROUPS).document(group_doc_id(after.group_id)),
                {"group_id": after.group_id, "state": after.to_json(), "updated_at": now},
            )
        )
    writes.apply(transaction)
    return outcome, after if changed else None


def group_from_doc(doc: dict[str, Any]) -> GroupState:
    """The :class:`GroupState` of a ``groups`` document."""
    return GroupState.from_json(doc["state"])
