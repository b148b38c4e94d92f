"""``mlsgw readonly on|off`` and ``mlsgw maintenance-mode on|off`` against the Cloud Run
stand-in, and the env vars they set against a real ``mlsgw serve``."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from mlsgw.modes import MAINTENANCE, READ_ONLY, wanted_env
from relay.app import Relay
from relay.config import load_config
from relay.server import RelayServer
from relay.store.sqlite import SqliteStore
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli, _start_relay, _stop
from tests.mlsgw.test_rollback import FAST, SERVICE_PATH, ledger_lines, traffic, writes
from tests.stand_ins.cloud_run import ServiceRecord
from tests.stand_ins.google import GoogleStandIn
from tests.support.nostr import Keys, RelayClient


def env_of(record: ServiceRecord, index: int = -1) -> dict[str, str]:
    containers = record.revisions[index].template["containers"]
    return {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}


def run_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_readonly_on_makes_a_new_serving_revision_with_the_env_var(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """readonly on: a new revision with MLSGW_LIMITATION__READ_ONLY=true gets the traffic,
    /health is verified, the ledger has the line and the undo hint is printed."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(cli, "readonly", "on", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert doc["status"] == "done"
    assert len(record.revisions) == 2 and env_of(record)["MLSGW_LIMITATION__READ_ONLY"] == "true"
    assert record.serving() == {record.revisions[-1].name: 100}
    assert {
        "field": "env MLSGW_LIMITATION__READ_ONLY",
        "before": "(unset)",
        "after": "true",
    }.items() <= doc["plan"][0].items()
    assert "`mlsgw readonly off`" in " ".join(doc["notices"])
    (line,) = ledger_lines(ledger_path)
    line_args, line_result = line["args"], line["result"]
    assert isinstance(line_args, dict) and isinstance(line_result, dict)
    assert line["command"] == "readonly" and line_args["state"] == "on"
    assert line_result["outcome"] == "done"


def test_readonly_on_twice_writes_nothing_the_second_time_and_off_turns_it_off(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Idempotent: the second `on` changes nothing; `off` sets the var to false."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    assert cli("readonly", "on", *target_args, "--yes", *FAST).exit_code == 0
    code, doc = run_json(cli, "readonly", "on", *target_args, "--yes", *FAST)
    assert code == 0 and "already on" in str(doc["summary"])
    assert len(writes(google)) == 1
    code, doc = run_json(cli, "readonly", "off", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert env_of(record)["MLSGW_LIMITATION__READ_ONLY"] == "false" and len(record.revisions) == 3


def test_readonly_dry_run_validates_and_changes_nothing(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """--dry-run: the plan, validated with validate_only; no revision, no ledger line."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(cli, "readonly", "on", *target_args, "--dry-run")
    assert code == 0 and doc["status"] == "planned"
    assert [c.query.get("validateOnly") for c in google.server.calls("PATCH", SERVICE_PATH)] == [
        "true"
    ]
    assert len(record.revisions) == 1 and writes(google) == [] and ledger_lines(ledger_path) == []


def test_maintenance_mode_on_sets_the_message_and_expects_503_maintenance(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """maintenance-mode on --message: both vars on the new revision; the service's /health
    answering 503 maintenance is the verification, not a failure."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(
        cli, "maintenance-mode", "on", "--message", "back at 14:00 UTC", *target_args, "--yes"
    )
    assert code == 0, doc
    env = env_of(record)
    assert env["MLSGW_INFORMATION__MAINTENANCE"] == "true"
    assert env["MLSGW_INFORMATION__MAINTENANCE_MESSAGE"] == "back at 14:00 UTC"
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["verify /health"]["detail"] == "503 maintenance, as the mode says"
    code, doc = run_json(cli, "maintenance-mode", "off", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert env_of(record)["MLSGW_INFORMATION__MAINTENANCE"] == "false"


def test_maintenance_mode_off_with_a_message_is_a_usage_error(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--message only goes with `on` (exit 3, nothing read or written)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    result = cli("maintenance-mode", "off", "--message", "x", *target_args, "--yes")
    assert result.exit_code == 3 and writes(google) == []


def test_a_toggle_without_terminal_or_yes_is_refused(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """No TTY and no --yes: refused (3), nothing written."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    code, doc = run_json(cli, "readonly", "on", *target_args)
    assert code == 3 and doc["status"] == "refused" and writes(google) == []


def test_pinned_traffic_is_refused_with_the_reason(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """Traffic pinned to revision 1: a new revision would serve nobody, so the toggle refuses
    naming the pin and the ways out; nothing is written, the refusal is in the ledger."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:1"], {"1": 100})
    pinned = record.revisions[0].name
    code, doc = run_json(cli, "readonly", "on", *target_args, "--yes")
    assert code == 3 and doc["status"] == "refused"
    assert f"traffic is pinned to {pinned}" in str(doc["summary"])
    assert "--move-traffic" in str(doc["summary"]) and writes(google) == []
    last_result = ledger_lines(ledger_path)[-1]["result"]
    assert isinstance(last_result, dict) and last_result["outcome"] == "refused"


def test_pinned_traffic_moves_to_the_new_revision_with_move_traffic(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--move-traffic (same image as the pinned revision): one update creates the revision
    and sends it 100% (LATEST), and the report says the traffic moved."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:1"], {"1": 100})
    pinned = record.revisions[0].name
    code, doc = run_json(cli, "readonly", "on", "--move-traffic", *target_args, "--yes", *FAST)
    assert code == 0, doc
    new = record.revisions[-1].name
    assert traffic(record) == [("LATEST", None, 100, None)] and record.serving() == {new: 100}
    assert env_of(record)["MLSGW_LIMITATION__READ_ONLY"] == "true"
    assert any(
        f"Traffic moved from {pinned} to the new revision {new}" in n for n in doc["notices"]
    )
    assert len(writes(google)) == 1


def test_move_traffic_is_refused_when_the_new_revision_would_run_another_image(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Pinned to img:1 while the template runs img:2 (after a rollback): moving the traffic
    would bring back img:2, so it is refused naming both images."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"], {"1": 100})
    code, doc = run_json(cli, "readonly", "on", "--move-traffic", *target_args, "--yes")
    assert code == 3 and writes(google) == []
    assert "img:1" in str(doc["summary"]) and "mlsgw deploy --image img:1" in str(doc["summary"])


# --- the startup probe: /health answers 503 in maintenance mode ----------------------------

HEALTH_PROBE = {
    "httpGet": {"path": "/health", "port": 8080},
    "periodSeconds": 2,
    "timeoutSeconds": 1,
    "failureThreshold": 30,
}
TCP_PROBE = {
    "tcpSocket": {"port": 8080},
    "periodSeconds": 2,
    "timeoutSeconds": 1,
    "failureThreshold": 30,
}


def with_probe(record: ServiceRecord, probe: dict[str, Any]) -> ServiceRecord:
    """The service's template (what its next revision starts from) gets this startup probe."""
    record.template["containers"][0]["startupProbe"] = copy.deepcopy(probe)
    return record


def stored_probe(record: ServiceRecord) -> object:
    return record.template["containers"][0].get("startupProbe")


def plan_of(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["field"]: (c["before"], c["after"]) for c in doc["plan"]}


def test_maintenance_mode_on_switches_a_get_health_startup_probe_to_tcp_and_says_why(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """The startup probe `mlsgw deploy --create` sets (GET /health) would fail on a revision
    in maintenance mode, so `on` makes it a TCP probe of the same port with the same timing
    in the same update: the new revision becomes Ready and serves; the plan, the notice and
    the ledger's pre-state show the probe."""
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), HEALTH_PROBE)
    code, doc = run_json(cli, "maintenance-mode", "on", *target_args, "--yes")
    assert code == 0, doc
    assert stored_probe(record) == TCP_PROBE and len(writes(google)) == 1
    assert record.serving() == {record.revisions[-1].name: 100}
    assert env_of(record)["MLSGW_INFORMATION__MAINTENANCE"] == "true"
    assert plan_of(doc)["startup probe"] == ("GET /health on port 8080", "TCP port 8080")
    assert any("/health answers 503 in maintenance mode" in n for n in doc["notices"])
    pre = ledger_lines(ledger_path)[-1]["pre_state"]
    assert isinstance(pre, dict)
    assert pre["service"]["startup_probe"] == {
        "kind": "http",
        "port": 8080,
        "path": "/health",
        "period_seconds": 2,
        "timeout_seconds": 1,
        "failure_threshold": 30,
        "initial_delay_seconds": 0,
    }


def test_maintenance_mode_on_dry_run_lists_the_probe_change_in_both_plans(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """--dry-run: the probe change is its own plan line (JSON and the human view), with the
    reason, and nothing is written."""
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), HEALTH_PROBE)
    code, doc = run_json(cli, "maintenance-mode", "on", *target_args, "--dry-run")
    assert code == 0 and doc["status"] == "planned"
    assert plan_of(doc)["startup probe"] == ("GET /health on port 8080", "TCP port 8080")
    assert any("checks the port instead" in n for n in doc["notices"])
    human = cli("maintenance-mode", "on", *target_args, "--dry-run")
    assert human.exit_code == 0
    assert "startup probe: GET /health on port 8080 → TCP port 8080" in human.stdout
    assert stored_probe(record) == HEALTH_PROBE and writes(google) == []


def test_maintenance_mode_on_again_repairs_a_mode_stuck_behind_its_startup_probe(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The maintenance env var already in the template with GET /health as the probe (an
    older `on` whose revision never became Ready): `on` is not \"already on\", it switches
    the probe and the mode takes effect."""
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), HEALTH_PROBE)
    record.template["containers"][0]["env"] = [
        {"name": "MLSGW_INFORMATION__MAINTENANCE", "value": "true"}
    ]
    code, doc = run_json(cli, "maintenance-mode", "on", *target_args, "--yes")
    assert code == 0, doc
    assert stored_probe(record) == TCP_PROBE
    assert record.serving() == {record.revisions[-1].name: 100}
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["verify /health"]["detail"] == "503 maintenance, as the mode says"


def test_maintenance_mode_off_switches_the_tcp_probe_back_to_get_health(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """After `on` made it a TCP probe, `off` makes it GET /health again (same port and timing)
    in the update that switches the mode off, and says so in the plan."""
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), HEALTH_PROBE)
    assert cli("maintenance-mode", "on", *target_args, "--yes").exit_code == 0
    code, doc = run_json(cli, "maintenance-mode", "off", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert stored_probe(record) == HEALTH_PROBE
    assert env_of(record)["MLSGW_INFORMATION__MAINTENANCE"] == "false"
    assert plan_of(doc)["startup probe"] == ("TCP port 8080", "GET /health on port 8080")
    assert any("GET /health again" in n for n in doc["notices"])


def test_a_startup_probe_on_another_path_is_left_alone_by_maintenance_mode(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """An operator's probe on /ready is theirs: neither `on` nor `off` changes it."""
    ready = dict(HEALTH_PROBE, httpGet={"path": "/ready", "port": 8080})
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), ready)
    code, doc = run_json(cli, "maintenance-mode", "on", *target_args, "--yes")
    assert code == 0, doc
    assert "startup probe" not in plan_of(doc) and stored_probe(record) == ready
    code, doc = run_json(cli, "maintenance-mode", "off", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert "startup probe" not in plan_of(doc) and stored_probe(record) == ready


def test_readonly_leaves_the_startup_probe_alone(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """Read-only mode keeps /health at 200, so `readonly on` keeps GET /health."""
    record = with_probe(google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"]), HEALTH_PROBE)
    code, doc = run_json(cli, "readonly", "on", *target_args, "--yes", *FAST)
    assert code == 0, doc
    assert "startup probe" not in plan_of(doc) and stored_probe(record) == HEALTH_PROBE


# --- the env vars the toggles set, on a real relay ----------------------------------------


def test_the_readonly_env_var_makes_a_real_relay_block_writes_and_serve_reads(
    tmp_path: Path,
) -> None:
    """`mlsgw serve` with the env the readonly toggle sets: EVENT blocked, REQ served."""
    relay = _start_relay(tmp_path / "data", **wanted_env(READ_ONLY, True, None))
    try:

        async def exercise() -> None:
            client = await RelayClient.open(relay.url.replace("http", "ws"))
            event = Keys().sign(1, "x")
            reply = await client.publish(event)
            assert reply[2:] == [False, "blocked: relay is read-only for maintenance"]
            assert (await client.req("s", {}))[1] == ["EOSE", "s"]
            await client.close()

        asyncio.run(exercise())
    finally:
        _stop(relay)


async def test_the_maintenance_env_vars_close_connections_and_fail_health(
    tmp_path: Path,
) -> None:
    """The env the maintenance toggle sets: NOTICE with the message, close, /health 503."""
    environ = {"MLSGW_CONFIG": "", **wanted_env(MAINTENANCE, True, "back soon")}
    config = load_config(None, environ)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, path=str(tmp_path)),
        network=dataclasses.replace(config.network, host="127.0.0.1", port=0),
    )
    store = SqliteStore(config.sqlite_path)
    await store.open()
    relay = Relay(config, store)
    await relay.start()
    server = RelayServer(relay)
    await server.start("127.0.0.1", 0)
    try:
        client = await RelayClient.open(f"ws://127.0.0.1:{server.port}")
        assert await client.recv() == ["NOTICE", "back soon"]
        with pytest.raises(ConnectionClosed):
            await client.recv()
        with pytest.raises(urllib.error.HTTPError) as failed:
            await asyncio_to_thread(f"http://127.0.0.1:{server.port}/health")
        assert failed.value.code == 503
        assert json.loads(failed.value.read())["status"] == "maintenance"
    finally:
        await server.shutdown(2.0)
        await store.close()


async def asyncio_to_thread(url: str) -> bytes:
    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
            return body

    return await asyncio.to_thread(get)
