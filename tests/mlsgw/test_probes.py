"""What the probes read back from the relay's own exposition (pure: no sockets)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from mlsgw.probes import sweeps_in
from relay.gateway import MlsMetrics


def test_the_sweep_counts_are_read_from_the_relays_own_counters() -> None:
    """The relay's archive counter (no label) and its key package counter by reason come
    back as ``archive``, ``keypackage_expired`` and ``keypackage_last_resort``."""
    registry = CollectorRegistry()
    metrics = MlsMetrics(registry)
    metrics.archive_swept.inc(7)
    metrics.keypackages_swept.labels("expired").inc(3)
    metrics.keypackages_swept.labels("last_resort").inc(1)
    assert sweeps_in(generate_latest(registry).decode()) == {
        "archive": 7,
        "keypackage_expired": 3,
        "keypackage_last_resort": 1,
    }
