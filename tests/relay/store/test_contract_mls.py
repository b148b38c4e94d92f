"""relay.store: the MLS state contract every backend passes (R-M1b, R-M3…R-M10), run
against SQLite and against Firestore over the wire (emulator)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection, invalid
from relay.mls.groups import GroupState
from relay.store.base import MlsStore
from tests.support.nostr import Keys

ALICE, BOB, CAROL = (Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33"))
NOW = 1_700_000_000
TTL = 7 * 86400
GRACE = 600
DAY = 86400


@pytest.fixture
def store(any_store: MlsStore) -> MlsStore:
    """Each backend in turn (see conftest.any_store)."""
    return any_store


def keypackage(keys: Keys = ALICE, age: int = 0, n: int = 0) -> Event:
    """A 443 created ``age`` seconds before NOW (``n`` makes it unique)."""
    return keys.sign(443, f"{n:04x}", [], created_at=NOW - age)


async def save_kp(
    store: MlsStore, event: Event, *, max_per_owner: int = 15, now: int = NOW
) -> tuple[Outcome, int, int]:
    saved = await store.save_keypackage(
        event, expires_at=now + TTL, max_per_owner=max_per_owner, grace=GRACE, now=now
    )
    return saved.outcome, saved.evicted, saved.last_resort_scheduled


async def take(
    store: MlsStore, *authors: Keys, per_author: int = 1, now: int = NOW
) -> list[tuple[str, bool]]:
    served = await store.take_keypackages(
        [a.pubkey for a in authors], per_author=per_author, consume=True, now=now
    )
    return [(s.event.id, s.consumed) for s in served]


async def stored_ids(store: MlsStore, *kinds: int, now: int = NOW) -> set[str]:
    return {e.id for e in await store.query([Filter(kinds=frozenset(kinds))], now)}


def group_msg(group: str = "g1") -> Event:
    return CAROL.sign(445, "ciphertext", [["h", group]], created_at=NOW)


async def test_save_keypackage_stores_the_signed_event_unchanged(store: MlsStore) -> None:
    """The full event comes back byte for byte (clients verify it)."""
    event = keypackage()
    assert (await save_kp(store, event))[0] is Outcome.STORED
    (back,) = await store.query([Filter(kinds=frozenset({443}))], NOW)
    assert back.raw == event.raw


async def test_save_keypackage_twice_is_a_duplicate(store: MlsStore) -> None:
    """The same key package again is DUPLICATE and still one key package."""
    event = keypackage()
    await save_kp(store, event)
    assert (await save_kp(store, event))[0] is Outcome.DUPLICATE
    assert await take(store, ALICE) == [(event.id, False)]


async def test_save_keypackage_evicts_the_owners_oldest_beyond_the_cap(
    store: MlsStore,
) -> None:
    """At most ``max_per_owner`` per owner: the oldest go; other owners are untouched."""
    kps = [keypackage(age=10 - i, n=i) for i in range(4)]
    other = keypackage(BOB)
    await save_kp(store, other, max_per_owner=3)
    results = [await save_kp(store, kp, max_per_owner=3) for kp in kps]
    assert [evicted for _, evicted, _ in results] == [0, 0, 0, 1]
    assert await stored_ids(store, 443) == {kp.id for kp in kps[1:]} | {other.id}


async def test_saved_keypackage_expires_from_queries_at_its_expiry(store: MlsStore) -> None:
    """A key package past its computed expiry is not returned, even before the sweep."""
    event = keypackage()
    await store.save_keypackage(event, expires_at=NOW + 60, max_per_owner=15, grace=0, now=NOW)
    assert await stored_ids(store, 443, now=NOW + 59) == {event.id}
    assert await stored_ids(store, 443, now=NOW + 60) == set()
    assert (
        await store.take_keypackages([ALICE.pubkey], per_author=1, consume=True, now=NOW + 60) == []
    )


async def test_take_consumes_the_oldest_and_keeps_the_last(store: MlsStore) -> None:
    """Oldest first, each served one deleted, the last one kept and served again."""
    old, new = keypackage(age=2, n=1), keypackage(age=1, n=2)
    for kp in (new, old):
        await save_kp(store, kp)
    assert await take(store, ALICE) == [(old.id, True)]
    assert await take(store, ALICE) == [(new.id, False)]
    assert await take(store, ALICE) == [(new.id, False)]
    assert await stored_ids(store, 443) == {new.id}


async def test_take_serves_each_author_separately(store: MlsStore) -> None:
    """Per-author limit: one from each of two authors."""
    a1, a2, b1 = keypackage(age=2, n=1), keypackage(age=1, n=2), keypackage(BOB)
    for kp in (a1, a2, b1):
        await save_kp(store, kp)
    assert sorted(await take(store, ALICE, BOB)) == sorted([(a1.id, True), (b1.id, False)])


async def test_take_two_per_author(store: MlsStore) -> None:
    """per_author 2 with three stored: two consumed, one left."""
    kps = [keypackage(age=3 - i, n=i) for i in range(3)]
    for kp in kps:
        await save_kp(store, kp)
    assert await take(store, ALICE, per_author=2) == [(kps[0].id, True), (kps[1].id, True)]
    assert await stored_ids(store, 443) == {kps[2].id}


async def test_take_respects_the_filter(store: MlsStore) -> None:
    """Only key packages matching ``where`` (here ``since``) are candidates."""
    old, new = keypackage(age=100, n=1), keypackage(age=1, n=2)
    for kp in (old, new):
        await save_kp(store, kp)
    served = await store.take_keypackages(
        [ALICE.pubkey], per_author=1, consume=True, now=NOW, where=Filter(since=NOW - 10)
    )
    assert [s.event.id for s in served] == [new.id]


async def test_a_narrowed_take_still_consumes_when_the_owner_has_others(
    store: MlsStore,
) -> None:
    """A filter that matches one of three key packages (``ids``) gets that one consumed:
    the last-resort rule counts every key package the owner holds, not only those the
    filter matched, so narrowing cannot turn one into a reusable last resort."""
    kps = [keypackage(age=3, n=1), keypackage(age=2, n=2), keypackage(age=1, n=3)]
    for kp in kps:
        await save_kp(store, kp)
    narrowed = Filter(ids=frozenset({kps[2].id}))
    served = await store.take_keypackages(
        [ALICE.pubkey], per_author=1, consume=True, now=NOW, where=narrowed
    )
    assert [(s.event.id, s.consumed) for s in served] == [(kps[2].id, True)]
    assert await stored_ids(store, 443) == {kps[0].id, kps[1].id}
    again = await store.take_keypackages(
        [ALICE.pubkey], per_author=1, consume=True, now=NOW, where=narrowed
    )
    assert again == []
    # Not a last resort either: the owner's next key package schedules nothing.
    assert (await save_kp(store, keypackage(age=0, n=4)))[2] == 0


async def test_take_without_consume_deletes_nothing(store: MlsStore) -> None:
    """``consume=False`` serves without deleting or marking a last resort."""
    kps = [keypackage(age=2, n=1), keypackage(age=1, n=2)]
    for kp in kps:
        await save_kp(store, kp)
    served = await store.take_keypackages([ALICE.pubkey], per_author=2, consume=False, now=NOW)
    assert [s.consumed for s in served] == [False, False]
    assert await stored_ids(store, 443) == {kp.id for kp in kps}


async def test_take_for_an_unknown_author_is_empty(store: MlsStore) -> None:
    """No key packages: nothing served."""
    assert await take(store, CAROL) == []


async def test_unserved_last_keypackage_is_not_scheduled(store: MlsStore) -> None:
    """A key package never served as a last resort is an ordinary one."""
    await save_kp(store, keypackage(age=2, n=1))
    assert (await save_kp(store, keypackage(age=1, n=2)))[2] == 0


async def test_pending_last_resort_is_served_only_when_nothing_else_is_left(
    store: MlsStore,
) -> None:
    """A last resort pending deletion comes back only if the fresh ones are gone."""
    last, fresh1, fresh2 = (keypackage(age=100 - i, n=i) for i in range(3))
    await save_kp(store, last)
    await take(store, ALICE)
    await save_kp(store, fresh1)
    await store.save_keypackage(fresh2, expires_at=NOW + 50, max_per_owner=15, grace=0, now=NOW)
    assert await take(store, ALICE) == [(fresh1.id, True)]
    assert await take(store, ALICE) == [(fresh2.id, False)]
    assert await take(store, ALICE, now=NOW + 50) == [(last.id, False)]


async def test_pending_deletions_do_not_count_against_the_cap(store: MlsStore) -> None:
    """The cap applies to live key packages; a pending last resort is not evicted early."""
    last = keypackage(age=100, n=0)
    await save_kp(store, last, max_per_owner=2)
    await take(store, ALICE)
    results = [
        await save_kp(store, keypackage(age=10 - i, n=i + 1), max_per_owner=2) for i in range(2)
    ]
    assert [evicted for _, evicted, _ in results] == [0, 0]
    assert last.id in await stored_ids(store, 443)


async def test_save_group_event_stores_event_and_state_together(store: MlsStore) -> None:
    """The new state is returned, stored and loaded back with the event."""
    state = GroupState("g1", owner=ALICE.pubkey)
    event = group_msg()
    outcome, after = await store.save_group_event(event, lambda before: state, NOW)
    assert outcome is Outcome.STORED and after == state
    assert await store.load_groups() == [state]
    assert await stored_ids(store, 445) == {event.id}


async def test_save_group_event_passes_the_stored_state_to_the_transition(
    store: MlsStore,
) -> None:
    """The transition sees the group's current state (None the first time)."""
    seen: list[GroupState | None] = []
    first = GroupState("g1", owner=ALICE.pubkey, last_epoch=1)

    def record(result: GroupState) -> Callable[[GroupState | None], GroupState]:
        def transition(before: GroupState | None) -> GroupState:
            seen.append(before)
            return result

        return transition

    await store.save_group_event(group_msg(), record(first), NOW)
    second = GroupState("g1", owner=ALICE.pubkey, last_epoch=2)
    await store.save_group_event(
        CAROL.sign(445, "2", [["h", "g1"]], created_at=NOW),
        record(second),
        NOW,
    )
    assert seen == [None, first]


async def test_rejected_group_event_stores_nothing(store: MlsStore) -> None:
    """A rejection from the transition: no event, no state."""
    outcome, after = await store.save_group_event(
        group_msg(), lambda before: invalid("stale seq"), NOW
    )
    assert isinstance(outcome, Rejection) and after is None
    assert await stored_ids(store, 445) == set() and await store.load_groups() == []


async def test_failing_transition_rolls_back_the_event(store: MlsStore) -> None:
    """An exception inside the transaction leaves neither event nor state."""

    def boom(before: GroupState | None) -> GroupState:
        raise RuntimeError("transition failed")

    with pytest.raises(RuntimeError):
        await store.save_group_event(group_msg(), boom, NOW)
    assert await stored_ids(store, 445) == set() and await store.load_groups() == []


async def test_group_event_without_state_change_is_stored_alone(store: MlsStore) -> None:
    """Transition None (or an unchanged state): the event is stored, no state returned."""
    event = group_msg()
    outcome, after = await store.save_group_event(event, lambda before: None, NOW)
    assert outcome is Outcome.STORED and after is None
    assert await stored_ids(store, 445) == {event.id} and await store.load_groups() == []


async def test_duplicate_group_event_does_not_change_state(store: MlsStore) -> None:
    """A duplicate event is not applied a second time."""
    event = group_msg()
    await store.save_group_event(event, lambda before: GroupState("g1", last_epoch=1), NOW)
    outcome, after = await store.save_group_event(
        event, lambda before: GroupState("g1", last_epoch=2), NOW
    )
    assert outcome is Outcome.DUPLICATE and after is None
    assert [g.last_epoch for g in await store.load_groups()] == [1]


async def test_sweep_archives_old_mls_messages_only(store: MlsStore) -> None:
    """445/446/1059 created before the cutoff go; newer ones and other kinds stay."""
    cutoff = NOW - 30 * DAY
    old = [
        CAROL.sign(kind, "", [["p", BOB.pubkey], ["h", "g"]], created_at=cutoff - 1)
        for kind in (445, 446, 1059)
    ]
    kept = [
        CAROL.sign(445, "", [["h", "g"]], created_at=cutoff),
        CAROL.sign(1, "note", [], created_at=cutoff - 1),
        ALICE.sign(450, "", [["h", "g"]], created_at=cutoff - 1),
    ]
    for event in old + kept:
        await store.save(event, NOW)
    result = await store.sweep_mls(NOW, cutoff)
    assert result.archived == 3
    assert await stored_ids(store, 1, 445, 446, 450, 1059) == {e.id for e in kept}


async def test_fresh_keypackages_schedule_the_served_last_resort_for_deletion(
    store: MlsStore,
) -> None:
    """Once the last one was served as a last resort, publishing fresh ones schedules its
    deletion at now + grace; meanwhile only fresh ones are served."""
    last = keypackage(age=100, n=1)
    await save_kp(store, last)
    assert await take(store, ALICE) == [(last.id, False)]
    fresh = keypackage(age=1, n=2)
    assert (await save_kp(store, fresh))[2] == 1
    assert await take(store, ALICE) == [(fresh.id, False)]


async def test_sweep_deletes_expired_keypackages(store: MlsStore) -> None:
    """Key packages past their expiry are removed with their bookkeeping."""
    short, long = keypackage(n=1), keypackage(n=2)
    await store.save_keypackage(short, expires_at=NOW + 10, max_per_owner=15, grace=0, now=NOW)
    await store.save_keypackage(long, expires_at=NOW + TTL, max_per_owner=15, grace=0, now=NOW)
    result = await store.sweep_mls(NOW + 10, 0)
    assert result.keypackages_expired == 1
    assert await stored_ids(store, 443, now=NOW) == {long.id}


async def test_sweep_executes_due_last_resort_deletions_only(store: MlsStore) -> None:
    """Before now + grace the last resort stays; from then on the sweep deletes it."""
    last, fresh = keypackage(age=100, n=1), keypackage(age=1, n=2)
    await save_kp(store, last)
    await take(store, ALICE)
    await save_kp(store, fresh)
    assert (await store.sweep_mls(NOW + GRACE - 1, 0)).last_resort_deleted == 0
    assert await stored_ids(store, 443) == {last.id, fresh.id}
    assert (await store.sweep_mls(NOW + GRACE, 0)).last_resort_deleted == 1
    assert await stored_ids(store, 443) == {fresh.id}
