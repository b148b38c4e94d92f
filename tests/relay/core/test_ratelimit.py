"""relay.core.ratelimit: token buckets driven by an explicit clock (R-A5)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from relay.core.ratelimit import KindLimit, KindRateLimiter, TokenBucket


def test_bucket_starts_full_and_empties() -> None:
    """A new bucket allows ``capacity`` takes at once, then refuses."""
    bucket = TokenBucket(3, 1)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_its_rate() -> None:
    """Tokens come back at ``rate`` per second, never beyond capacity."""
    bucket = TokenBucket(2, 0.5)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)
    assert not bucket.take(11.0)  # half a token
    assert bucket.take(12.0)  # one token after 2 s
    assert not bucket.take(12.0)
    assert bucket.take(1000.0) and bucket.take(1000.0) and not bucket.take(1000.0)


def test_refused_take_consumes_nothing() -> None:
    """A refused take leaves the tokens for a later, cheaper take."""
    bucket = TokenBucket(1, 1)
    assert not bucket.take(0.0, cost=2)
    assert bucket.take(0.0)


def test_clock_going_backwards_does_not_refill() -> None:
    """A smaller ``now`` than the last update adds no tokens."""
    bucket = TokenBucket(1, 1)
    assert bucket.take(100.0)
    assert not bucket.take(50.0)


def test_is_full_reports_a_refilled_bucket() -> None:
    """is_full is true for a new bucket and once refilled."""
    bucket = TokenBucket(2, 1)
    assert bucket.is_full(0.0)
    bucket.take(0.0)
    assert not bucket.is_full(0.5)
    assert bucket.is_full(1.0)


GROUP = KindLimit("mls_group_messages", 2, 60.0, frozenset({445}))
DMS = KindLimit("noise_dms", 1, 60.0, frozenset({446, 445}))


def test_limiter_names_the_rule_over_its_limit() -> None:
    """The third 445 in a minute from one key is refused with the rule's name."""
    limiter = KindRateLimiter((GROUP,))
    assert limiter.check(445, "alice", 0.0) is None
    assert limiter.check(445, "alice", 1.0) is None
    assert limiter.check(445, "alice", 2.0) == "mls_group_messages"


def test_limiter_ignores_kinds_without_rules() -> None:
    """Kinds no rule covers are never limited and create no buckets."""
    limiter = KindRateLimiter((GROUP,))
    for _ in range(10):
        assert limiter.check(1, "alice", 0.0) is None
    assert len(limiter) == 0


def test_limiter_keeps_separate_buckets_per_client_key() -> None:
    """One key's usage does not limit another's."""
    limiter = KindRateLimiter((GROUP,))
    limiter.check(445, "alice", 0.0)
    limiter.check(445, "alice", 0.0)
    assert limiter.check(445, "alice", 0.0) == "mls_group_messages"
    assert limiter.check(445, "bob", 0.0) is None


def test_limiter_refills_over_the_period() -> None:
    """After period/limit seconds one more event passes."""
    limiter = KindRateLimiter((GROUP,))
    limiter.check(445, "a", 0.0)
    limiter.check(445, "a", 0.0)
    assert limiter.check(445, "a", 29.0) == "mls_group_messages"
    assert limiter.check(445, "a", 30.0) is None


def test_an_event_refused_by_one_rule_consumes_no_tokens_of_another() -> None:
    """With overlapping rules, a refusal leaves every bucket unchanged."""
    limiter = KindRateLimiter((GROUP, DMS))
    assert limiter.check(445, "a", 0.0) is None  # GROUP 1 left, DMS 0 left
    assert limiter.check(445, "a", 0.0) == "noise_dms"
    assert limiter.check(445, "a", 0.0) == "noise_dms"
    assert limiter.check(445, "a", 60.0) is None  # GROUP was not drained by the refusals


def test_an_event_charged_to_several_keys_takes_from_each_or_from_none() -> None:
    """One key over its limit refuses the event for all of them, and consumes nothing
    from the others: a connection gains no budget by holding one more key."""
    limiter = KindRateLimiter((GROUP,))
    assert limiter.check(445, "alice", 0.0) is None
    assert limiter.check(445, ("alice", "bob"), 0.0) is None  # alice 0 left, bob 1 left
    assert limiter.check(445, ("bob", "alice"), 0.0) == "mls_group_messages"
    assert limiter.check(445, "bob", 0.0) is None  # the refusal took nothing from bob
    assert limiter.check(445, "bob", 0.0) == "mls_group_messages"


def test_prune_forgets_only_refilled_buckets() -> None:
    """prune drops full buckets (bounded memory) and keeps partly used ones."""
    limiter = KindRateLimiter((GROUP,))
    limiter.check(445, "a", 0.0)
    limiter.check(445, "b", 50.0)
    assert len(limiter) == 2
    assert limiter.prune(60.0) == 1
    assert len(limiter) == 1


@given(st.lists(st.floats(0, 1000, allow_nan=False), max_size=60))
def test_never_more_than_limit_plus_refill(times: list[float]) -> None:
    """Over any sequence of times, accepted events <= limit + elapsed * rate."""
    limiter = KindRateLimiter((GROUP,))
    times = sorted(times)
    accepted = sum(1 for t in times if limiter.check(445, "k", t) is None)
    if times:
        assert accepted <= GROUP.limit + (times[-1] - times[0]) * GROUP.limit / GROUP.period + 1e-9


def test_a_rule_covers_its_kinds_and_its_ranges_with_the_end_excluded() -> None:
    rule = KindLimit("mixed", 1, 60.0, frozenset({1, 2}), ((30000, 40000),))
    assert [rule.covers(k) for k in (1, 2, 3, 29999, 30000, 39999, 40000)] == [
        True, True, False, False, True, True, False,
    ]  # fmt: skip


def test_a_rule_without_kinds_or_ranges_covers_every_kind() -> None:
    """As in rnostr: ``kinds`` only narrows a rule."""
    everything = KindLimit("all", 1, 60.0, frozenset())
    limiter = KindRateLimiter((everything,))
    assert limiter.check(1, "alice", 0.0) is None
    assert limiter.check(30023, "alice", 0.0) == "all"


def test_a_client_in_a_rules_ip_whitelist_is_not_limited_by_it() -> None:
    exempt = (ipaddress.ip_network("10.0.0.0/8"),)
    rule = KindLimit("notes", 1, 60.0, frozenset({1}), exempt=exempt)
    limiter = KindRateLimiter((rule,))
    for _ in range(3):
        assert limiter.check(1, "ip:10.1.2.3", 0.0, "10.1.2.3") is None
    assert limiter.check(1, "ip:192.0.2.1", 0.0, "192.0.2.1") is None
    assert limiter.check(1, "ip:192.0.2.1", 0.0, "192.0.2.1") == "notes"
