"""relay.store.sqlite_events: the event SQL on an in-memory database, fed hostile events."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.outcome import Outcome
from relay.store.migrations import apply_migrations
from relay.store.sqlite_events import (
    count_events,
    has_json,
    is_plain,
    query_raw,
    save_event,
    save_plain_events,
)
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000


def fresh_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn)
    return conn


tag_names = st.sampled_from(["expiration", "d", "a", "e", "p", "t", "-", "x"]) | st.text(max_size=3)
tag_values = (
    st.text(max_size=30)
    | st.integers(-(2**70), 2**70).map(str)
    | st.sampled_from(
        [
            "²",
            "١٢٣",
            "9" * 5000,
            "0" * 30 + "1",
            f"30023:{ALICE.pubkey}:",
            f"²:{ALICE.pubkey}:x",
            f"{'9' * 30}:{ALICE.pubkey}:x",
            f"0:{ALICE.pubkey}:",
        ]
    )
)
hostile_tags = st.lists(
    st.lists(tag_values, max_size=3).flatmap(lambda rest: tag_names.map(lambda n: [n, *rest])),
    max_size=6,
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 3, 5, 10002, 30023]),
            hostile_tags,
            st.integers(0, 2**40),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_saving_any_valid_event_returns_an_outcome(
    events: list[tuple[int, list[list[str]], int]],
) -> None:
    """Whatever the tags hold, save_event answers with an Outcome and queries keep working."""
    conn = fresh_db()
    for kind, tags, created_at in events:
        event = ALICE.sign(kind, "", tags, created_at=created_at)
        assert isinstance(save_event(conn, event), Outcome)
    stored = query_raw(conn, [Filter()], NOW)
    assert count_events(conn, [Filter()], NOW) == len(stored) <= len(events)


@given(
    st.dictionaries(
        st.sampled_from(["since", "until", "limit"]), st.integers(0, 2**64 - 1), max_size=3
    )
)
def test_any_accepted_filter_can_be_queried(fields: dict[str, int]) -> None:
    """Every filter the parser accepts binds to SQL without overflowing."""
    parsed = parse_filter(fields)
    if isinstance(parsed, Filter):
        conn = fresh_db()
        query_raw(conn, [parsed], NOW)
        count_events(conn, [parsed], NOW)


def table_rows(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], ...]:
    """Every stored row, with each column's SQLite type (a raw must stay a BLOB)."""
    events = conn.execute(
        "SELECT seq, id, pubkey, created_at, kind, d_tag, expires_at, raw, typeof(raw),"
        " typeof(created_at), typeof(expires_at) FROM events ORDER BY seq"
    ).fetchall()
    tags = conn.execute(
        "SELECT event_seq, name, value, created_at, typeof(value) FROM tags ORDER BY rowid"
    ).fetchall()
    return events, tags


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 7, 445, 1059]),
            st.booleans(),
            hostile_tags,
            st.integers(0, 2**40),
            st.text(max_size=20),
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(0, 7), max_size=4),
    st.lists(st.integers(0, 7), max_size=3),
)
def test_a_run_of_plain_events_is_saved_as_one_save_each_would(
    specs: list[tuple[int, bool, list[list[str]], int, str]],
    repeats: list[int],
    deleted: list[int],
) -> None:
    """save_plain_events gives each event the outcome save_event would, in order
    (repeats in the run are duplicates, ids their author deleted stay deleted, another
    author's deletion does not count), and leaves the same rows: ids, columns, row ids,
    tags, the raw JSON as a BLOB."""
    events = [
        (BOB if by_bob else ALICE).sign(kind, content, tags, created_at=created_at)
        for kind, by_bob, tags, created_at, content in specs
    ]
    assert all(is_plain(event) for event in events)
    before = [ALICE.sign(1, "stored before", created_at=NOW)] + [
        ALICE.sign(5, "", [["e", events[i % len(events)].id]], created_at=NOW) for i in deleted
    ]
    run = events + [events[i % len(events)] for i in repeats] + [before[0]]
    one_by_one, together = fresh_db(), fresh_db()
    assert has_json(together)
    for conn in (one_by_one, together):
        for event in before:
            save_event(conn, event)
    expected = [save_event(one_by_one, event) for event in run]
    assert save_plain_events(together, run) == expected
    assert table_rows(together) == table_rows(one_by_one)


def test_a_run_longer_than_one_insert_statement_is_saved_as_one_save_each_would() -> None:
    """Runs of more rows than one multi-row insert takes (events and tags alike) are
    split across statements without losing, repeating or reordering a row."""
    for count in (1, 63, 64, 65, 150, 256):
        run = [
            ALICE.sign(1, f"event {i}", [["t", f"t{i}"], ["p", BOB.pubkey], ["e", "x"]])
            for i in range(count)
        ]
        one_by_one, together = fresh_db(), fresh_db()
        expected = [save_event(one_by_one, event) for event in run]
        assert save_plain_events(together, run) == expected == [Outcome.STORED] * count
        assert table_rows(together) == table_rows(one_by_one)


def test_only_events_that_neither_replace_nor_delete_are_plain() -> None:
    """Replaceable, addressable and deletion events take the one-at-a-time path."""
    assert is_plain(ALICE.sign(1)) and is_plain(ALICE.sign(445)) and is_plain(ALICE.sign(20001))
    for kind in (0, 3, 5, 10002, 30023):
        assert not is_plain(ALICE.sign(kind, "", [["d", "x"]]))


# --- more values than SQLite binds in one statement ---------------------------------------------

VARIABLE_LIMIT = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def stored(conn: sqlite3.Connection, *events: Event) -> None:
    for event in events:
        assert save_event(conn, event) is Outcome.STORED


def test_a_filter_listing_more_values_than_sqlite_binds_is_answered() -> None:
    """ids, authors or tag values past SQLite's variable limit are answered as one
    statement would answer them: the same events, order and limit, and counts."""
    conn = fresh_db()
    alice = [ALICE.sign(1, f"a{i}", [["p", BOB.pubkey]], created_at=NOW - i) for i in range(3)]
    bob = BOB.sign(7, "b", created_at=NOW - 10)
    stored(conn, *alice, bob)
    strangers = frozenset(f"{i:064x}" for i in range(VARIABLE_LIMIT))
    by_authors = Filter(authors=strangers | {ALICE.pubkey}, limit=2)
    assert query_raw(conn, [by_authors], NOW) == [alice[0].raw, alice[1].raw]
    by_ids = Filter(ids=strangers | {bob.id})
    assert query_raw(conn, [by_ids, Filter(kinds=frozenset({1}), limit=1)], NOW) == [
        alice[0].raw,
        bob.raw,
    ]
    by_tag = Filter(tags=(("p", strangers | {BOB.pubkey}),))
    assert count_events(conn, [by_tag, by_ids], NOW) == 4


def test_a_count_whose_filters_together_pass_sqlites_variable_limit_is_answered() -> None:
    """Filters that each fit but not all together (a COUNT of several filters, each
    listing the connection's keys) are counted, each event once."""
    conn = fresh_db()
    events = [ALICE.sign(1059, "", [["p", BOB.pubkey]], created_at=NOW - i) for i in range(3)]
    stored(conn, *events)
    keys = sorted(f"{i:064x}" for i in range(VARIABLE_LIMIT // 2)) + [BOB.pubkey]
    filters = [
        Filter(kinds=frozenset({1059}), tags=(("p", frozenset(keys)),), since=NOW - 2 + i)
        for i in range(3)
    ]
    assert count_events(conn, filters, NOW) == 3


def test_splitting_for_lower_sqlite_limits_answers_exactly_as_one_statement() -> None:
    """With SQLite's variable and compound-term limits set low, every query and count
    over lists of ids, authors, kinds and tag values answers as with the defaults."""
    authors = [ALICE, BOB, Keys(bytes.fromhex("33" * 32))]
    events = [
        authors[i % 3].sign(
            (1, 7, 1059)[i % 3 if i % 4 else 0],
            f"e{i}",
            [["p", authors[(i + 1) % 3].pubkey], ["t", f"t{i % 5}"]],
            created_at=NOW - i // 2,
        )
        for i in range(24)
    ]
    roomy, tight = fresh_db(), fresh_db()
    for conn in (roomy, tight):
        stored(conn, *events)
    tight.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 12)
    tight.setlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, 2)
    some_ids = frozenset(e.id for e in events[::2]) | {"0" * 64}
    pubkeys = frozenset(k.pubkey for k in authors)
    cases = [
        [Filter(ids=some_ids)],
        [Filter(ids=some_ids, limit=3), Filter(authors=pubkeys, kinds=frozenset({1, 7}))],
        [Filter(authors=pubkeys, kinds=frozenset({1, 7, 1059, 5}), limit=5, since=NOW - 9)],
        [Filter(tags=(("t", frozenset(f"t{i}" for i in range(9))), ("p", pubkeys)), limit=4)],
        [Filter(kinds=frozenset({1059}), tags=(("p", pubkeys),), until=NOW - 3, limit=2)] * 3,
        [Filter(ids=some_ids, authors=pubkeys, kinds=frozenset({1, 7}))] * 4,
    ]
    for filters in cases:
        for oldest_first in (False, True):
            expected = query_raw(roomy, filters, NOW, oldest_first=oldest_first)
            assert query_raw(tight, filters, NOW, oldest_first=oldest_first) == expected
            assert expected
        assert count_events(tight, filters, NOW) == count_events(roomy, filters, NOW) > 0
