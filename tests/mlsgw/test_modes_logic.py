"""The emergency modes' pure decisions: which env vars change, when traffic blocks a toggle."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from mlsgw.gcp.base import (
    Condition,
    EnvVar,
    ProbeKind,
    Revision,
    Scaling,
    ServiceState,
    StartupProbe,
    TrafficKind,
    TrafficTarget,
    health_probe,
)
from mlsgw.modes import (
    MAINTENANCE,
    READ_ONLY,
    env_changes,
    probe_change,
    traffic_problem,
    wanted_env,
)

READY = Condition("Ready", "succeeded")


def service(traffic: tuple[TrafficTarget, ...], image: str = "img:2") -> ServiceState:
    return ServiceState(
        name="projects/p/locations/r/services/s",
        uri="https://s",
        etag="e",
        generation=3,
        ready=READY,
        latest_ready_revision="s-2",
        latest_created_revision="s-2",
        traffic=traffic,
        traffic_statuses=traffic,
        image=image,
        scaling=Scaling(),
    )


REVISIONS = [
    Revision("s-2", datetime(2026, 12, 1, tzinfo=UTC), READY, "img:2"),
    Revision("s-1", datetime(2026, 11, 30, tzinfo=UTC), READY, "img:1"),
]
LATEST = (TrafficTarget(TrafficKind.LATEST, 100),)
PINNED = (TrafficTarget(TrafficKind.REVISION, 100, "s-1"),)


def test_turning_off_an_unset_mode_changes_nothing() -> None:
    """`false` and unset are the same for the switch; `1` and `true` the same for on."""
    assert env_changes({}, wanted_env(READ_ONLY, False, None)) == {}
    assert (
        env_changes({"MLSGW_LIMITATION__READ_ONLY": "1"}, wanted_env(READ_ONLY, True, None)) == {}
    )
    assert env_changes({}, wanted_env(READ_ONLY, True, None)) == {
        "MLSGW_LIMITATION__READ_ONLY": "true"
    }


def test_a_new_maintenance_message_is_a_change_even_when_already_on() -> None:
    current = {"MLSGW_INFORMATION__MAINTENANCE": "true"}
    assert env_changes(current, wanted_env(MAINTENANCE, True, "back at 15:00")) == {
        "MLSGW_INFORMATION__MAINTENANCE_MESSAGE": "back at 15:00"
    }


def test_traffic_on_latest_never_blocks() -> None:
    assert traffic_problem(service(LATEST), REVISIONS, move_traffic=False) is None


def test_pinned_traffic_blocks_unless_moved_and_the_image_matches() -> None:
    """Pinned: refused without --move-traffic; with it, only when the pinned revision runs the
    template's image (else the toggle would bring the rolled-back image back)."""
    problem = traffic_problem(service(PINNED), REVISIONS, move_traffic=False)
    assert problem is not None and "pinned to s-1" in problem and "--move-traffic" in problem
    other_image = traffic_problem(service(PINNED), REVISIONS, move_traffic=True)
    assert other_image is not None and "mlsgw deploy --image img:1" in other_image
    assert traffic_problem(service(PINNED, image="img:1"), REVISIONS, move_traffic=True) is None


TCP = StartupProbe(ProbeKind.TCP, 8080, period_seconds=2, timeout_seconds=1, failure_threshold=30)


def probed(probe: StartupProbe | None, maintenance: str | None = None) -> ServiceState:
    env = () if maintenance is None else (EnvVar("MLSGW_INFORMATION__MAINTENANCE", maintenance),)
    return dataclasses.replace(service(LATEST), startup_probe=probe, env=env)


def test_maintenance_on_turns_get_health_into_tcp_of_the_same_port_and_timing() -> None:
    assert probe_change(MAINTENANCE, True, probed(health_probe(8080))) == TCP
    custom = dataclasses.replace(health_probe(9000), period_seconds=5, failure_threshold=12)
    assert probe_change(MAINTENANCE, True, probed(custom)) == StartupProbe(
        ProbeKind.TCP, 9000, period_seconds=5, timeout_seconds=1, failure_threshold=12
    )


def test_maintenance_off_turns_the_tcp_probe_back_only_while_the_mode_is_on() -> None:
    """Back to GET /health when the mode goes off; with the mode already off, nothing."""
    assert probe_change(MAINTENANCE, False, probed(TCP, "true")) == health_probe(8080)
    assert probe_change(MAINTENANCE, False, probed(TCP, "false")) is None
    assert probe_change(MAINTENANCE, False, probed(TCP)) is None


def test_probes_maintenance_mode_did_not_set_are_never_touched() -> None:
    """Another path, gRPC, Cloud Run's default TCP probe, no probe, and readonly: unchanged."""
    ready = health_probe(8080, "/ready")
    grpc = dataclasses.replace(TCP, kind=ProbeKind.GRPC)
    default = StartupProbe(
        ProbeKind.TCP, 8080, period_seconds=240, timeout_seconds=240, failure_threshold=1
    )
    for on in (True, False):
        for probe in (ready, grpc, default, None):
            assert probe_change(MAINTENANCE, on, probed(probe, "true")) is None
    assert probe_change(READ_ONLY, True, probed(health_probe(8080))) is None
    assert probe_change(READ_ONLY, False, probed(TCP, "true")) is None
