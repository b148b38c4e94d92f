"""relay.core.backlog: only a client that stops reading is dropped (pure decisions)."""

from __future__ import annotations

from relay.core.backlog import Backlog, BacklogLimits, over_total

LIMITS = BacklogLimits(high_water=100, stall_timeout=5.0, hard_cap=1000, total_cap=1500)


def test_below_the_high_water_mark_nothing_is_watched() -> None:
    backlog = Backlog(LIMITS)
    assert backlog.check(0.0, written=100, buffered=100) is None
    assert backlog.check(1000.0, written=100, buffered=100) is None


def test_a_reader_making_progress_is_kept_however_long_it_stays_behind() -> None:
    backlog = Backlog(LIMITS)
    written, buffered = 0, 0
    for second in range(100):
        written += 300
        buffered = min(900, buffered + 250)  # 50 bytes a second leave: slow but reading
        assert backlog.check(float(second), written, buffered) is None


def test_no_progress_above_the_mark_for_the_timeout_drops() -> None:
    backlog = Backlog(LIMITS)
    assert backlog.check(0.0, written=500, buffered=400) is None
    assert backlog.check(4.9, written=500, buffered=400) is None
    reason = backlog.check(5.0, written=500, buffered=400)
    assert reason is not None and "network.slow_consumer_timeout (5 s)" in reason


def test_falling_below_the_mark_restarts_the_clock() -> None:
    backlog = Backlog(LIMITS)
    backlog.check(0.0, written=500, buffered=400)
    assert backlog.check(4.0, written=500, buffered=50) is None
    assert backlog.check(8.0, written=900, buffered=450) is None
    assert backlog.check(12.0, written=900, buffered=450) is None
    assert backlog.check(13.0, written=900, buffered=450) is not None


def test_the_hard_cap_drops_at_once() -> None:
    backlog = Backlog(LIMITS)
    reason = backlog.check(0.0, written=2000, buffered=1001)
    assert reason is not None and "network.max_send_buffer (1000 bytes)" in reason
    assert backlog.over_cap(1000) is None


def test_over_total_drops_the_largest_backlogs_first() -> None:
    sizes = [("a", 400), ("b", 900), ("c", 600)]
    assert over_total(sizes, 1500) == ["b"]
    assert over_total(sizes, 500) == ["b", "c"]
    assert over_total(sizes, 1900) == []
