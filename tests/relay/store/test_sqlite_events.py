"""relay.store.sqlite_events: the event SQL on an in-memory database, fed hostile events."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.core.filters import Filter, parse_filter
from relay.core.outcome import Outcome
from relay.store.migrations import apply_migrations
from relay.store.sqlite_events import count_events, query_raw, save_event
from tests.support.nostr import Keys

ALICE = Keys(bytes.fromhex("11" * 32))
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
def test_saving_any_valid_event_returns_an_outcome(events: list[tuple[int, list, int]]) -> None:
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
