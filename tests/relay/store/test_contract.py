"""relay.store: the event store contract every backend passes (R-S1), run against SQLite
and against Firestore over the wire (emulator)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.outcome import Outcome
from relay.store.base import MlsStore, StoreUnavailable
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000


@pytest.fixture
def store(any_store: MlsStore) -> MlsStore:
    """Each backend in turn (see conftest.any_store)."""
    return any_store


def f(**fields: Any) -> Filter:
    parsed = parse_filter(fields)
    assert isinstance(parsed, Filter)
    return parsed


def ev(keys: Keys = ALICE, kind: int = 1, created_at: int = NOW, **kwargs: Any) -> Event:
    return keys.sign(kind, kwargs.get("content", ""), kwargs.get("tags"), created_at=created_at)


async def ids(store: MlsStore, *filters: Filter, now: int = NOW) -> list[str]:
    return [e.id for e in await store.query(filters or (Filter(),), now)]


def deletion(keys: Keys, *tags: list[str], created_at: int = NOW) -> Event:
    return keys.sign(5, "", list(tags), created_at=created_at)


def with_lower_id_first(make: Any) -> tuple[Event, Event]:
    """Two distinct events from ``make(i)``, ordered so the first has the lower id."""
    a, b = make(0), make(1)
    return (a, b) if a.id < b.id else (b, a)


async def test_save_then_query_returns_the_event_unchanged(store: MlsStore) -> None:
    """A stored event comes back with identical JSON."""
    event = ev(content="é\n😀", tags=[["t", "x"]])
    assert await store.save(event, NOW) is Outcome.STORED
    (back,) = await store.query([Filter()], NOW)
    assert back == event and back.raw == event.raw


async def test_saving_twice_is_a_duplicate(store: MlsStore) -> None:
    """The same id again is DUPLICATE and stored once."""
    event = ev()
    await store.save(event, NOW)
    assert await store.save(event, NOW) is Outcome.DUPLICATE
    assert await ids(store) == [event.id]


async def test_save_many_answers_each_event_as_save_would_in_order(store: MlsStore) -> None:
    """One save_many call: each event gets the outcome a save in that order would give
    (a repeat within the call is a duplicate, a deleted event stays deleted)."""
    first, second = ev(content="one"), ev(content="two")
    gone = ev(content="gone")
    await store.save(gone, NOW)
    await store.save(deletion(ALICE, ["e", gone.id]), NOW)
    results = await store.save_many([first, second, first, gone], NOW)
    assert results == [Outcome.STORED, Outcome.STORED, Outcome.DUPLICATE, Outcome.DELETED]
    assert set(await ids(store, f(kinds=[1]))) == {first.id, second.id}


async def test_results_are_newest_first_with_ties_by_lowest_id(store: MlsStore) -> None:
    """Order is created_at descending, then id ascending."""
    old = ev(created_at=NOW - 10)
    tie_a, tie_b = with_lower_id_first(lambda i: ev(created_at=NOW, content=str(i)))
    new = ev(created_at=NOW + 10)
    for event in (tie_b, old, new, tie_a):
        await store.save(event, NOW)
    assert await ids(store) == [new.id, tie_a.id, tie_b.id, old.id]


async def test_limit_takes_the_newest(store: MlsStore) -> None:
    """``limit`` keeps the newest events of that filter."""
    events = [ev(created_at=NOW + i) for i in range(5)]
    for event in events:
        await store.save(event, NOW)
    assert await ids(store, f(limit=2)) == [events[4].id, events[3].id]
    assert await ids(store, f(limit=0)) == []


async def test_limits_apply_per_filter_and_results_are_merged(store: MlsStore) -> None:
    """Each filter gets its own limit; the union is deduplicated and ordered as a whole."""
    notes = [ev(kind=1, created_at=NOW + i) for i in range(3)]
    reactions = [ev(kind=7, created_at=NOW + 10 + i) for i in range(3)]
    for event in notes + reactions:
        await store.save(event, NOW)
    got = await ids(store, f(kinds=[1], limit=2), f(kinds=[7], limit=1), f(ids=[notes[2].id]))
    assert got == [reactions[2].id, notes[2].id, notes[1].id]


async def test_filter_fields(store: MlsStore) -> None:
    """ids, authors, kinds, since and until (inclusive) select the right events."""
    a1 = ev(ALICE, 1, NOW - 5)
    a7 = ev(ALICE, 7, NOW)
    b1 = ev(BOB, 1, NOW + 5)
    for event in (a1, a7, b1):
        await store.save(event, NOW)
    assert await ids(store, f(ids=[a7.id, "ab" * 32])) == [a7.id]
    assert await ids(store, f(authors=[ALICE.pubkey])) == [a7.id, a1.id]
    assert await ids(store, f(kinds=[1])) == [b1.id, a1.id]
    assert await ids(store, f(since=NOW)) == [b1.id, a7.id]
    assert await ids(store, f(until=NOW)) == [a7.id, a1.id]
    assert await ids(store, f(since=NOW, until=NOW)) == [a7.id]
    assert await ids(store, f(authors=[BOB.pubkey], kinds=[7])) == []
    assert await ids(store, f(ids=[])) == []
    assert await ids(store, f(since=NOW + 1, until=NOW)) == []


async def test_tag_queries(store: MlsStore) -> None:
    """``#x`` values are ORed, different tags ANDed; only single-letter names are indexed."""
    x = ev(tags=[["t", "nostr"], ["p", BOB.pubkey]], content="x")
    y = ev(tags=[["t", "mls"]], content="y")
    z = ev(tags=[["T", "nostr"], ["title", "nostr"], ["t"]], content="z")
    for event in (x, y, z):
        await store.save(event, NOW)
    assert set(await ids(store, f(**{"#t": ["nostr", "mls"]}))) == {x.id, y.id}
    assert await ids(store, f(**{"#t": ["nostr"], "#p": [BOB.pubkey]})) == [x.id]
    assert await ids(store, f(**{"#t": ["mls"], "#p": [BOB.pubkey]})) == []
    assert await ids(store, f(**{"#T": ["nostr"]})) == [z.id]
    assert await ids(store, f(**{"#t": []})) == []


async def test_a_filter_matching_one_event_twice_returns_it_once(store: MlsStore) -> None:
    """Several matching tag values never duplicate a result."""
    event = ev(tags=[["t", "a"], ["t", "b"]])
    await store.save(event, NOW)
    assert await ids(store, f(**{"#t": ["a", "b"]}), f(kinds=[1])) == [event.id]


async def test_count_ignores_limits_and_counts_distinct_events(store: MlsStore) -> None:
    """COUNT is the size of the union of the filters' matches."""
    events = [ev(kind=1, created_at=NOW + i, tags=[["t", "x"]]) for i in range(4)]
    for event in events:
        await store.save(event, NOW)
    await store.save(ev(kind=7), NOW)
    assert await store.count([f(kinds=[1], limit=1)], NOW) == 4
    assert await store.count([f(kinds=[1]), f(**{"#t": ["x"]})], NOW) == 4
    assert await store.count([f(kinds=[1]), f(kinds=[7])], NOW) == 5
    assert await store.count([f(kinds=[])], NOW) == 0
    assert await store.count([f(kinds=[9])], NOW) == 0


@pytest.mark.parametrize("kind", [0, 3, 10000, 10002, 19999])
async def test_replaceable_keeps_only_the_newest(store: MlsStore, kind: int) -> None:
    """A newer version replaces the stored one; an older one is SUPERSEDED."""
    old, new = ev(kind=kind, created_at=NOW - 1), ev(kind=kind, created_at=NOW)
    assert await store.save(old, NOW) is Outcome.STORED
    assert await store.save(new, NOW) is Outcome.STORED
    assert await ids(store, f(kinds=[kind])) == [new.id]
    older = ev(kind=kind, created_at=NOW - 2)
    assert await store.save(older, NOW) is Outcome.SUPERSEDED
    assert await ids(store, f(kinds=[kind])) == [new.id]


async def test_replaceable_is_per_pubkey_and_kind(store: MlsStore) -> None:
    """Another author's or another kind's replaceable event is independent."""
    for event in (ev(ALICE, 0), ev(BOB, 0), ev(ALICE, 3)):
        await store.save(event, NOW)
    assert await store.count([Filter()], NOW) == 3


async def test_replaceable_tie_keeps_the_lowest_id(store: MlsStore) -> None:
    """Same created_at: the event with the lowest id wins, whichever arrives first."""
    low, high = with_lower_id_first(lambda i: ev(kind=0, content=str(i)))
    assert await store.save(low, NOW) is Outcome.STORED
    assert await store.save(high, NOW) is Outcome.SUPERSEDED
    assert await ids(store) == [low.id]


async def test_replaceable_tie_replaces_a_higher_id(store: MlsStore) -> None:
    """Same created_at, lower id arriving second replaces the stored one."""
    low, high = with_lower_id_first(lambda i: ev(kind=10002, content=str(i)))
    assert await store.save(high, NOW) is Outcome.STORED
    assert await store.save(low, NOW) is Outcome.STORED
    assert await ids(store) == [low.id]


async def test_addressable_keeps_the_newest_per_d_tag(store: MlsStore) -> None:
    """30000–39999 replace per (pubkey, kind, d); a missing d equals ``d=""``."""
    a1 = ev(kind=30023, created_at=NOW - 1, tags=[["d", "a"]])
    a2 = ev(kind=30023, created_at=NOW, tags=[["d", "a"]])
    b1 = ev(kind=30023, created_at=NOW - 1, tags=[["d", "b"]])
    no_d = ev(kind=30023, created_at=NOW - 1)
    empty_d = ev(kind=30023, created_at=NOW, tags=[["d", ""]])
    for event in (a1, a2, b1, no_d, empty_d):
        assert await store.save(event, NOW) is Outcome.STORED
    assert set(await ids(store)) == {a2.id, b1.id, empty_d.id}
    assert await store.save(a1, NOW) is Outcome.SUPERSEDED


async def test_addressable_tie_keeps_the_lowest_id(store: MlsStore) -> None:
    """Ties between addressable versions are broken by lowest id too."""
    low, high = with_lower_id_first(lambda i: ev(kind=30000, tags=[["d", "x"]], content=str(i)))
    await store.save(high, NOW)
    await store.save(low, NOW)
    assert await store.save(high, NOW) is Outcome.SUPERSEDED
    assert await ids(store) == [low.id]


async def test_e_deletion_removes_the_authors_event_and_blocks_it(store: MlsStore) -> None:
    """A kind 5 with ``e`` removes the author's event; publishing it again is DELETED."""
    target = ev(content="oops")
    await store.save(target, NOW)
    delete = deletion(ALICE, ["e", target.id])
    assert await store.save(delete, NOW) is Outcome.STORED
    assert await ids(store) == [delete.id]
    assert await store.save(target, NOW) is Outcome.DELETED
    assert await ids(store) == [delete.id]


async def test_deletion_before_the_event_blocks_it(store: MlsStore) -> None:
    """An ``e`` deletion that arrives first still blocks the event later."""
    target = ev()
    await store.save(deletion(ALICE, ["e", target.id]), NOW)
    assert await store.save(target, NOW) is Outcome.DELETED


async def test_deletion_by_someone_else_changes_nothing(store: MlsStore) -> None:
    """BOB cannot delete ALICE's event, now or in advance."""
    target = ev(ALICE)
    later = ev(ALICE, content="later")
    await store.save(target, NOW)
    await store.save(deletion(BOB, ["e", target.id], ["e", later.id]), NOW)
    assert await store.save(later, NOW) is Outcome.STORED
    assert set(await ids(store, f(authors=[ALICE.pubkey]))) == {target.id, later.id}


async def test_deletions_cannot_delete_deletions(store: MlsStore) -> None:
    """A kind 5 referencing another kind 5 leaves it in place."""
    first = deletion(ALICE, ["e", "ab" * 32])
    await store.save(first, NOW)
    await store.save(deletion(ALICE, ["e", first.id], created_at=NOW + 1), NOW)
    assert first.id in await ids(store, f(kinds=[5]))


async def test_a_deletion_removes_addressable_versions_up_to_its_time(store: MlsStore) -> None:
    """An ``a`` deletion removes and blocks versions up to its time, not newer ones."""
    coordinate = f"30023:{ALICE.pubkey}:post"
    old = ev(kind=30023, created_at=NOW - 5, tags=[["d", "post"]])
    await store.save(old, NOW)
    delete = deletion(ALICE, ["a", coordinate], created_at=NOW)
    await store.save(delete, NOW)
    assert await ids(store, f(kinds=[30023])) == []
    assert await store.save(old, NOW) is Outcome.DELETED
    at_deletion = ev(kind=30023, created_at=NOW, tags=[["d", "post"]], content="same second")
    assert await store.save(at_deletion, NOW) is Outcome.DELETED
    newer = ev(kind=30023, created_at=NOW + 1, tags=[["d", "post"]])
    assert await store.save(newer, NOW) is Outcome.STORED
    assert await ids(store, f(kinds=[30023])) == [newer.id]


async def test_a_deletion_of_a_replaceable_kind(store: MlsStore) -> None:
    """``a`` = ``0:<pubkey>:`` deletes the profile and blocks older versions."""
    profile = ev(kind=0, created_at=NOW - 1)
    await store.save(profile, NOW)
    await store.save(deletion(ALICE, ["a", f"0:{ALICE.pubkey}:"]), NOW)
    assert await ids(store, f(kinds=[0])) == []
    assert await store.save(profile, NOW) is Outcome.DELETED


async def test_a_deletion_of_another_authors_coordinate_is_ignored(store: MlsStore) -> None:
    """Coordinates naming another pubkey, or malformed ones, delete nothing."""
    bobs = ev(BOB, kind=30000, tags=[["d", "x"]], created_at=NOW - 1)
    await store.save(bobs, NOW)
    await store.save(
        deletion(ALICE, ["a", f"30000:{BOB.pubkey}:x"], ["a", "nonsense"], ["a", "1:2"]), NOW
    )
    assert await ids(store, f(kinds=[30000])) == [bobs.id]
    assert await store.save(ev(BOB, kind=30000, tags=[["d", "x"]], created_at=NOW - 2), NOW) is (
        Outcome.SUPERSEDED
    )


@pytest.mark.official_firestore_only  # racing duplicates need transaction isolation
async def test_concurrent_saves_are_all_committed(store: MlsStore) -> None:
    """Many saves in flight at once (batched by the writer) each get their own outcome."""
    events = [ev(content=str(i), created_at=NOW + i) for i in range(300)]
    outcomes = await asyncio.gather(*(store.save(e, NOW) for e in events + events[:5]))
    assert outcomes.count(Outcome.STORED) == 300
    assert outcomes.count(Outcome.DUPLICATE) == 5
    assert await store.count([Filter()], NOW) == 300


async def test_values_beyond_int64_are_store_errors_not_crashes(store: MlsStore) -> None:
    """An integer SQLite cannot hold is a StoreUnavailable (→ ``error:``); the store goes on."""
    # parse_event refuses such events; build one directly to reach the store layer.
    huge = dataclasses.replace(ev(), created_at=2**63)
    with pytest.raises(StoreUnavailable):
        await store.save(huge, NOW)
    with pytest.raises(StoreUnavailable):
        await store.query([Filter(since=2**64)], NOW)
    assert await store.save(ev(), NOW) is Outcome.STORED


async def test_health_answers_when_open(store: MlsStore) -> None:
    """health() returns quietly on a working store."""
    await store.health()


async def test_a_write_check_commits_and_changes_no_data(store: MlsStore) -> None:
    """check_write() returns on a working store, repeatedly, and leaves every query,
    count and group load as it was."""
    event = ev(content="kept")
    assert await store.save(event, NOW) is Outcome.STORED
    await store.check_write()
    await store.check_write()
    assert [e.id for e in await store.query([Filter()], NOW)] == [event.id]
    assert await store.count([Filter()], NOW) == 1
    assert await store.load_groups() == []
    await store.health()


async def test_expired_events_are_hidden_then_swept(store: MlsStore) -> None:
    """Past its ``expiration`` an event is neither queried nor counted; the sweep deletes it."""
    expiring = ev(tags=[["expiration", str(NOW + 10)]], content="e")
    lasting = ev(content="l")
    await store.save(expiring, NOW)
    await store.save(lasting, NOW)
    assert set(await ids(store, now=NOW + 9)) == {expiring.id, lasting.id}
    assert await ids(store, now=NOW + 10) == [lasting.id]
    assert await store.count([Filter()], NOW + 10) == 1
    assert await store.delete_expired(NOW + 9) == 0
    assert await store.delete_expired(NOW + 10) == 1
    assert await store.delete_expired(NOW + 10) == 0


async def test_a_deletion_naming_an_event_by_id_and_by_coordinate(store: MlsStore) -> None:
    """The same addressable event named by ``e`` and ``a`` is deleted once, and blocked."""
    post = ev(kind=30023, created_at=NOW - 5, tags=[["d", "post"]])
    await store.save(post, NOW)
    delete = deletion(ALICE, ["e", post.id], ["a", f"30023:{ALICE.pubkey}:post"])
    assert await store.save(delete, NOW) is Outcome.STORED
    assert await ids(store, f(kinds=[30023])) == []
    assert await store.save(post, NOW) is Outcome.DELETED


async def test_an_older_version_is_accepted_once_the_newer_one_is_gone(store: MlsStore) -> None:
    """A replaceable slot whose stored version expired and was swept takes an older one."""
    newer = ev(kind=0, created_at=NOW, tags=[["expiration", str(NOW + 10)]])
    older = ev(kind=0, created_at=NOW - 5)
    await store.save(newer, NOW)
    assert await store.save(older, NOW) is Outcome.SUPERSEDED
    assert await store.delete_expired(NOW + 10) == 1
    assert await store.save(older, NOW + 10) is Outcome.STORED
    assert await ids(store, f(kinds=[0]), now=NOW + 10) == [older.id]


async def test_count_of_one_filter_matches_the_query_it_counts(store: MlsStore) -> None:
    """Single filters (counted without loading events where the store can) agree with the
    events a query returns: by author, kind, tag, time range, and with expired events."""
    events = [
        ev(ALICE, 1, NOW - 2, tags=[["t", "x"]], content="a"),
        ev(ALICE, 7, NOW - 1, tags=[["t", "y"]], content="b"),
        ev(BOB, 1, NOW, tags=[["t", "x"], ["p", ALICE.pubkey]], content="c"),
        ev(BOB, 1, NOW, tags=[["expiration", str(NOW + 5)]], content="expiring"),
    ]
    for event in events:
        await store.save(event, NOW)
    shapes: list[dict[str, Any]] = [
        {},
        {"kinds": [1]},
        {"kinds": [1, 7]},
        {"authors": [BOB.pubkey]},
        {"authors": [BOB.pubkey], "kinds": [1]},
        {"#t": ["x"]},
        {"#t": ["x"], "kinds": [1]},
        {"#t": ["x"], "#p": [ALICE.pubkey]},
        {"since": NOW - 1, "until": NOW},
        {"ids": [events[0].id]},
    ]
    for now in (NOW, NOW + 5):
        for shape in shapes:
            expected = len(await store.query([f(**shape)], now))
            assert await store.count([f(**shape)], now) == expected, (shape, now)


async def test_raw_queries_answer_the_stored_json_of_what_query_answers(store: MlsStore) -> None:
    """``query_raw`` is ``query`` as stored JSON, in the same order and limits; an
    immediate ``query_raw_now`` is that too, or None (then the caller awaits)."""
    events = [ev(created_at=NOW - i, content=str(i), tags=[["t", "x"]]) for i in range(4)]
    events.append(ev(BOB, kind=7, created_at=NOW - 1))
    for event in events:
        await store.save(event, NOW)
    for filters in (
        [f(limit=2)],
        [f(kinds=[1], limit=3), f(authors=[BOB.pubkey])],
        [f(**{"#t": ["x"]}), f(kinds=[7])],
    ):
        expected = [e.raw for e in await store.query(filters, NOW)]
        assert await store.query_raw(filters, NOW) == expected
        assert store.query_raw_now(filters, NOW) in (None, expected)
    oldest = await store.query_raw([f(kinds=[1], limit=2)], NOW, oldest_first=True)
    assert oldest == [events[3].raw, events[2].raw]
