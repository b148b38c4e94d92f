"""Pure parts of ``restore --to-database``: revision names and the switched traffic."""

from __future__ import annotations

from mlsgw.backups.restore_new import TAG, revision_for, switched_traffic
from mlsgw.gcp.base import Condition, Scaling, ServiceState, TrafficKind, TrafficTarget


def service(*traffic: TrafficTarget) -> ServiceState:
    return ServiceState(
        name="projects/p/locations/r/services/s",
        uri="https://s",
        etag="e",
        generation=2,
        ready=Condition("Ready", "succeeded"),
        latest_ready_revision="s-new",
        latest_created_revision="s-new",
        traffic=traffic,
        traffic_statuses=(),
        image="img",
        scaling=Scaling(),
    )


def test_revision_name_starts_with_the_service_and_fits_63_chars() -> None:
    """Cloud Run's rule for explicit revision names."""
    assert revision_for("mlsgw", "restored-1") == "mlsgw-restored-1"
    assert len(revision_for("s" * 40, "d" * 40)) == 63


def test_switch_follows_latest_when_the_service_did_and_drops_the_temporary_tag() -> None:
    """LATEST 100 % again, other tags kept at 0 %, the validation tag gone."""
    current = service(
        TrafficTarget(TrafficKind.REVISION, 100, "s-old"),
        TrafficTarget(TrafficKind.REVISION, 0, "s-new", tag=TAG),
        TrafficTarget(TrafficKind.REVISION, 0, "s-old", tag="canary"),
    )
    after = switched_traffic(current, "s-new", follows=True)
    assert after[0] == TrafficTarget(TrafficKind.LATEST, 100)
    assert [t.tag for t in after[1:]] == ["canary"]


def test_switch_pins_the_new_revision_when_traffic_was_pinned() -> None:
    """A pinned service stays pinned, now to the new revision."""
    current = service(
        TrafficTarget(TrafficKind.REVISION, 100, "s-old"),
        TrafficTarget(TrafficKind.REVISION, 0, "s-new", tag=TAG),
    )
    after = switched_traffic(current, "s-new", follows=False)
    assert after == (TrafficTarget(TrafficKind.REVISION, 100, "s-new"),)
