"""relay.store.firestore: what the contract suite cannot show — shared state across
instances, transaction isolation under races, Firestore's limits, pagination, and the
document shapes (integer times) — against the emulator over the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore as gfs

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.outcome import Outcome
from relay.store.firestore import FirestoreStore
from relay.store.firestore_docs import EVENTS, HEALTH, KEYPACKAGES, MAX_IN, WRITE_CHECK
from relay.store.firestore_events import DELETION_TARGETS_PER_TRANSACTION, PAGE
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000


@pytest.fixture
async def stores(firestore: FirestoreEmulator) -> AsyncIterator[tuple[FirestoreStore, ...]]:
    """Two stores (as two relay instances would have) on one emulator database."""
    pair = (FirestoreStore(firestore.project), FirestoreStore(firestore.project))
    for store in pair:
        await store.open()
    yield pair
    for store in pair:
        await store.close()


def f(**fields: Any) -> Filter:
    parsed = parse_filter(fields)
    assert isinstance(parsed, Filter)
    return parsed


def raw_client(emulator: FirestoreEmulator) -> gfs.AsyncClient:
    return gfs.AsyncClient(project=emulator.project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


async def test_an_event_saved_by_one_instance_is_seen_by_another(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """Both instances share one database: a save on A is a duplicate on B and queried there."""
    a, b = stores
    event = ALICE.sign(1, "shared", created_at=NOW)
    assert await a.save(event, NOW) is Outcome.STORED
    assert await b.save(event, NOW) is Outcome.DUPLICATE
    assert [e.id for e in await b.query([Filter()], NOW)] == [event.id]


async def test_documents_keep_times_as_integer_seconds(firestore: FirestoreEmulator) -> None:
    """created_at / expires_at are ints in the documents (never strings or timestamps)."""
    store = FirestoreStore(firestore.project)
    await store.open()
    kp = ALICE.sign(443, "00ff", [], created_at=NOW)
    await store.save_keypackage(kp, expires_at=NOW + 100, max_per_owner=5, grace=10, now=NOW)
    await store.close()
    client = raw_client(firestore)
    event_doc = (await client.collection(EVENTS).document(kp.id).get()).to_dict() or {}
    kp_doc = (await client.collection(KEYPACKAGES).document(kp.id).get()).to_dict() or {}
    client.close()  # type: ignore[no-untyped-call]
    assert type(event_doc["created_at"]) is int and type(event_doc["expires_at"]) is int
    assert type(kp_doc["expires_at"]) is int and kp_doc["owner"] == ALICE.pubkey
    assert bytes(event_doc["raw"]) == kp.raw


async def test_a_write_check_writes_only_its_own_collection(
    stores: tuple[FirestoreStore, FirestoreStore],
    firestore: FirestoreEmulator,
) -> None:
    """check_write() from two instances, on an empty database: the only documents then
    are the one relay_health document, holding the time in integer seconds; the relay's
    queries, counts and group loads see nothing."""
    a, b = stores
    await a.check_write()
    await b.check_write()
    client = raw_client(firestore)
    collections = [c.id async for c in client.collections()]
    documents = [d async for d in client.collection(HEALTH).stream()]
    client.close()  # type: ignore[no-untyped-call]
    assert collections == [HEALTH]
    assert [d.id for d in documents] == [WRITE_CHECK]
    assert type((documents[0].to_dict() or {})["checked_at"]) is int
    assert await a.query([Filter()], NOW) == [] and await a.count([Filter()], NOW) == 0
    assert await a.load_groups() == []


@pytest.mark.official_firestore_only
async def test_racing_replaceable_saves_keep_exactly_one_version(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """Versions saved concurrently from two instances: only the newest remains."""
    a, b = stores
    versions = [ALICE.sign(0, f"v{i}", created_at=NOW + i) for i in range(4)]
    await asyncio.gather(*(s.save(v, NOW) for s, v in zip([a, b] * 2, versions, strict=True)))
    assert [e.id for e in await a.query([f(kinds=[0])], NOW)] == [versions[-1].id]


@pytest.mark.official_firestore_only
async def test_racing_fetches_never_hand_out_a_consumed_keypackage_twice(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """Concurrent consuming fetches on two instances serve each key package at most once
    (except the kept last resort)."""
    a, b = stores
    kps = [ALICE.sign(443, f"{i:04x}", [], created_at=NOW - 10 + i) for i in range(4)]
    for kp in kps:
        await a.save_keypackage(kp, expires_at=NOW + 999, max_per_owner=15, grace=60, now=NOW)
    takes = await asyncio.gather(
        *(
            s.take_keypackages([ALICE.pubkey], per_author=1, consume=True, now=NOW)
            for s in [a, b] * 2
        )
    )
    consumed = [s.event.id for served in takes for s in served if s.consumed]
    assert len(consumed) == len(set(consumed)) == 3
    assert [e.id for e in await a.query([f(kinds=[443])], NOW)] == [kps[-1].id]
    assert sum(len(served) for served in takes) == 4


async def test_a_deletion_beyond_one_transaction_deletes_every_target(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """A kind 5 naming more targets than 500 writes allow is applied in parts, completely."""
    store = stores[0]
    targets = [ALICE.sign(1, f"n{i}", created_at=NOW) for i in range(5)]
    for event in targets:
        await store.save(event, NOW)
    filler = [["e", f"{i:064x}"] for i in range(DELETION_TARGETS_PER_TRANSACTION * 2)]
    delete = ALICE.sign(5, "", filler + [["e", t.id] for t in targets], created_at=NOW + 1)
    assert await store.save(delete, NOW) is Outcome.STORED
    assert [e.id for e in await store.query([Filter()], NOW)] == [delete.id]
    assert await store.save(targets[0], NOW) is Outcome.DELETED


async def test_a_refused_large_deletion_deletes_nothing(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """A large kind 5 whose own id its author deleted beforehand is DELETED, and none of
    its targets is touched (its earlier parts are not applied)."""
    store = stores[0]
    target = ALICE.sign(1, "stays", created_at=NOW)
    await store.save(target, NOW)
    filler = [["e", f"{i:064x}"] for i in range(DELETION_TARGETS_PER_TRANSACTION * 2)]
    large = ALICE.sign(5, "", [["e", target.id], *filler], created_at=NOW + 1)
    await store.save(ALICE.sign(5, "", [["e", large.id]], created_at=NOW + 2), NOW)
    assert await store.save(large, NOW) is Outcome.DELETED
    assert await store.save(target, NOW) is Outcome.DUPLICATE


async def test_more_than_30_authors_are_queried_in_chunks(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """Filters with more than 30 values are split inside the store, never refused."""
    store = stores[0]
    keys = [Keys(bytes([i + 1]) * 32) for i in range(MAX_IN + 5)]
    events = [k.sign(1, "x", created_at=NOW + i) for i, k in enumerate(keys)]
    for event in events:
        await store.save(event, NOW)
    got = await store.query([f(authors=[k.pubkey for k in keys])], NOW)
    assert [e.id for e in got] == [e.id for e in reversed(events)]
    tagged = await store.query([f(**{"#p": [k.pubkey for k in keys]})], NOW)
    assert tagged == []
    assert await store.count([f(authors=[k.pubkey for k in keys])], NOW) == len(keys)


@pytest.mark.official_firestore_only  # the npm fallback ignores query cursors
async def test_queries_page_through_more_than_one_page_with_exact_ties(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """A limit that ends inside a second with more events than a page still takes the
    lowest ids of that second; unlimited queries read every page."""
    store = stores[0]
    same_second = [ALICE.sign(1, f"t{i}", created_at=NOW) for i in range(PAGE + 20)]
    newer = ALICE.sign(1, "newest", created_at=NOW + 1)
    for event in [*same_second, newer]:
        await store.save(event, NOW)
    lowest = sorted(e.id for e in same_second)[:5]
    got = await store.query([f(kinds=[1], limit=6)], NOW)
    assert [e.id for e in got] == [newer.id, *lowest]
    assert len(await store.query([f(kinds=[1])], NOW)) == PAGE + 21
    oldest = await store.query([f(kinds=[1], limit=3)], NOW, oldest_first=True)
    assert [e.id for e in oldest] == sorted(e.id for e in same_second)[:3]


async def test_two_instances_see_the_same_groups(
    stores: tuple[FirestoreStore, FirestoreStore],
) -> None:
    """A group state stored by one instance is loaded by the other."""
    from relay.mls.groups import GroupState

    a, b = stores
    state = GroupState("g1", owner=ALICE.pubkey, members=frozenset({BOB.pubkey}), last_seq=1)
    message: Event = BOB.sign(445, "c", [["h", "g1"]], created_at=NOW)
    await a.save_group_event(message, lambda before: state, NOW)
    assert await b.load_groups() == [state]


async def test_on_the_emulator_without_project_id_the_environments_project_is_used(
    firestore: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``project_id``: ``GOOGLE_CLOUD_PROJECT`` names the emulator's project, so what the
    relay writes is where a client of that project reads it."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", firestore.project)
    store = FirestoreStore(None)
    await store.open()
    try:
        event = Keys().sign(1, "env project")
        assert await store.save(event, now=event.created_at) is Outcome.STORED
    finally:
        await store.close()
    reader = gfs.Client(project=firestore.project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    assert reader.collection(EVENTS).document(event.id).get().exists
