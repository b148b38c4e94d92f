"""relay.store.guarded: every store call bounded in time, repeatable calls retried with
backoff, the rest never repeated (R-S3); in front of a real SQLite store."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.store.base import StoreUnavailable
from relay.store.guarded import GuardedStore
from tests.support.nostr import Keys
from tests.support.stores import FlakyStore

ALICE = Keys(bytes.fromhex("11" * 32))
NOW = 1_700_000_000
TIMEOUT = 0.5
# Only a failure guard against a wait that never ends; the budget itself is TIMEOUT.
GUARD = 30.0


@pytest.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    store = FlakyStore(tmp_path / "relay.db")
    await store.open()
    yield store
    store.hang = False
    await store.close()


@pytest.fixture
def guarded(flaky: FlakyStore) -> GuardedStore:
    """In front of ``flaky``; while writes fail, health() makes one write check at its
    first call and no more (no test depends on how much time passes)."""
    return GuardedStore(flaky, timeout=TIMEOUT, backoff=0.01, write_check_interval=math.inf)


async def test_a_call_that_never_answers_fails_within_the_budget(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A hung store: StoreUnavailable naming the timeout, not a wait forever."""
    flaky.hang = True
    with pytest.raises(StoreUnavailable, match="timed out"):
        await asyncio.wait_for(guarded.save(ALICE.sign(1, "x"), NOW), GUARD)
    assert guarded.failing is not None and "timed out" in guarded.failing


async def test_transient_failures_of_repeatable_calls_are_retried(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """Two failures then success: the caller sees only the result; failing is cleared."""
    event = ALICE.sign(1, "kept")
    flaky.fail_next = 2
    assert await guarded.save(event, NOW) is Outcome.STORED
    flaky.fail_next = 2
    assert [e.id for e in await guarded.query([Filter()], NOW)] == [event.id]
    assert guarded.failing is None


async def test_retries_are_bounded(flaky: FlakyStore) -> None:
    """A store that keeps failing is tried a bounded number of times, then reported (with
    a budget no busy machine uses up first: the count of attempts is what is tested)."""
    guarded = GuardedStore(flaky, timeout=60.0, backoff=0.01)
    flaky.fail_queries = True
    with pytest.raises(StoreUnavailable, match="locked"):
        await guarded.count([Filter()], NOW)
    assert flaky.calls == 3


async def test_a_consuming_fetch_is_never_repeated(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A failed consuming key package fetch is reported at once (it may have committed);
    a non-consuming one is retried."""
    flaky.fail_next = 1
    with pytest.raises(StoreUnavailable):
        await guarded.take_keypackages([ALICE.pubkey], per_author=1, consume=True, now=NOW)
    assert flaky.calls == 1
    flaky.fail_next = 1
    assert (
        await guarded.take_keypackages([ALICE.pubkey], per_author=1, consume=False, now=NOW) == []
    )
    assert flaky.calls == 3


async def test_a_hung_health_check_fails_within_the_budget(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """health() of a wedged store raises instead of hanging the probe."""
    flaky.health_mode = "hang"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(guarded.health(), GUARD)
    assert time.monotonic() - started < GUARD
    flaky.health_mode = "ok"
    await guarded.health()


async def test_save_many_retries_only_the_events_that_failed(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A transient failure of one event in a batch: that event is retried alone and
    stored; the others are answered once; a lasting failure is that event's result."""
    events = [ALICE.sign(1, str(i)) for i in range(3)]
    flaky.fail_next = 1  # the first save of the batch fails once
    assert await guarded.save_many(events, NOW) == [Outcome.STORED] * 3
    assert flaky.calls == 4
    flaky.fail_saves = True
    (result,) = await guarded.save_many([ALICE.sign(1, "down")], NOW)
    assert isinstance(result, StoreUnavailable)
    flaky.fail_saves = False
    assert await guarded.save_many(events[:1], NOW) == [Outcome.DUPLICATE]


async def test_a_hung_store_fails_a_whole_batch_within_one_budget(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A batch of saves against a store that never answers: every event fails with the
    timeout after one budget, not one budget per event."""
    flaky.hang = True
    events = [ALICE.sign(1, f"hung {i}") for i in range(8)]
    results = await asyncio.wait_for(guarded.save_many(events, NOW), GUARD)
    assert all(isinstance(r, StoreUnavailable) and "timed out" in str(r) for r in results)
    assert flaky.calls == 1  # the first save hung; no event was tried again


async def test_health_is_unhealthy_while_writes_fail_and_healthy_once_a_write_check_commits(
    flaky: FlakyStore,
) -> None:
    """Writes failing while reads and the store's own check work: health() raises naming
    the write failure, still after reads succeed and for as long as the write check fails;
    once the fault is gone, health() itself clears it with a write check, without any
    client write (nothing is stored)."""
    guarded = GuardedStore(flaky, timeout=TIMEOUT, backoff=0.01, write_check_interval=0)
    flaky.fail_saves = True
    with pytest.raises(StoreUnavailable):
        await guarded.save(ALICE.sign(1, "lost"), NOW)
    assert guarded.writes_failing is not None
    assert guarded.writes_failing.startswith("save: disk I/O error")
    await flaky.health()  # the backend's own check sees nothing wrong
    assert await guarded.query([Filter()], NOW) == []
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match=r"writes failing: write check: disk I/O"):
            await guarded.health()
    assert flaky.write_checks == 2
    flaky.fail_saves = False
    await guarded.health()
    assert guarded.writes_failing is None and flaky.write_checks == 3
    await guarded.health()  # healthy: no further write check
    assert flaky.write_checks == 3
    assert await guarded.query([Filter()], NOW) == []


async def test_repeated_health_calls_within_the_interval_make_one_write_check(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A flood of health() calls, one after another and at once, while writes fail: one
    write check in all; within the interval even a recovered store stays unhealthy (no
    check is made) until a client write succeeds."""
    flaky.fail_saves = True
    with pytest.raises(StoreUnavailable):
        await guarded.save(ALICE.sign(1, "lost"), NOW)
    for _ in range(5):
        with pytest.raises(StoreUnavailable, match="writes failing"):
            await guarded.health()
    results = await asyncio.gather(*(guarded.health() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert flaky.write_checks == 1
    flaky.fail_saves = False
    with pytest.raises(StoreUnavailable, match="writes failing"):
        await guarded.health()
    assert flaky.write_checks == 1
    assert await guarded.save(ALICE.sign(1, "kept"), NOW) is Outcome.STORED
    await guarded.health()
    assert flaky.write_checks == 1


async def test_a_concurrent_health_call_does_not_wait_for_a_write_check_in_flight(
    flaky: FlakyStore,
) -> None:
    """A write check that hangs: the health() that made it fails within the budget naming
    the timeout; one called meanwhile fails at once, making no second check."""
    guarded = GuardedStore(flaky, timeout=TIMEOUT, backoff=0.01, write_check_interval=0)
    guarded.writes_failing = "save: disk I/O error"
    flaky.hang = True
    first = asyncio.create_task(guarded.health())
    await asyncio.sleep(0)  # the first call is now inside its write check
    with pytest.raises(StoreUnavailable, match="writes failing: save: disk I/O error"):
        await asyncio.wait_for(guarded.health(), GUARD)
    with pytest.raises(StoreUnavailable, match="writes failing: write check timed out"):
        await asyncio.wait_for(first, GUARD)
    assert flaky.write_checks == 1


async def test_health_is_unhealthy_while_a_batch_or_a_consuming_fetch_failed(
    flaky: FlakyStore, guarded: GuardedStore
) -> None:
    """A batch with a lasting failure and a failed consuming key package fetch are
    failed writes too; a batch that all commits makes the store healthy again."""
    flaky.fail_saves = True
    (result,) = await guarded.save_many([ALICE.sign(1, "down")], NOW)
    assert isinstance(result, StoreUnavailable)
    assert guarded.writes_failing is not None and guarded.writes_failing.startswith("save_many")
    with pytest.raises(StoreUnavailable, match="writes failing"):
        await guarded.health()
    flaky.fail_saves = False
    assert await guarded.save_many([ALICE.sign(1, "up")], NOW) == [Outcome.STORED]
    await guarded.health()
    flaky.fail_saves = True
    with pytest.raises(StoreUnavailable):
        await guarded.take_keypackages([ALICE.pubkey], per_author=1, consume=True, now=NOW)
    with pytest.raises(StoreUnavailable, match="writes failing: take_keypackages"):
        await guarded.health()
