"""``mlsgw lockdown`` and ``lockdown --revert``: real Cloud Run and Logging clients against
the stand-ins; IAM policy, invoker flag, evidence directory and ledger asserted."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.cloud_run import INGRESS_ALL, ServiceRecord
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.rest import permission_denied

SERVICE_PATH = f"/v2/projects/{PROJECT}/locations/{REGION}/services/{SERVICE}"
SET_IAM = SERVICE_PATH + ":setIamPolicy"
PUBLIC_BINDINGS = [
    {"role": "roles/run.invoker", "members": ["allUsers", "user:ops@example.com"]},
    {"role": "roles/run.admin", "members": ["user:admin@example.com"]},
]


@pytest.fixture
def public(google: GoogleStandIn) -> ServiceRecord:
    """A public service: allUsers may invoke it and invoker_iam_disabled is true; logs of
    the last hours plus one entry older than a day."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    record.iam["bindings"] = copy.deepcopy(PUBLIC_BINDINGS)
    record.invoker_iam_disabled = True
    google.logging.add_entry(PROJECT, SERVICE, "GET /api 403", severity="WARNING")
    google.logging.add_entry(PROJECT, SERVICE, "AUTH failed", age=timedelta(hours=5))
    google.logging.add_entry(PROJECT, SERVICE, "old news", age=timedelta(hours=30))
    google.logging.add_entry(PROJECT, "another-service", "not ours")
    return record


def members(record: ServiceRecord) -> dict[str, set[str]]:
    return {b["role"]: set(b["members"]) for b in record.iam["bindings"]}


def iam_writes(google: GoogleStandIn) -> list[dict[str, object]]:
    return [r.body["policy"] for r in google.server.calls("POST", SET_IAM)]


def service_writes(google: GoogleStandIn) -> list[dict[str, object]]:
    calls = google.server.calls("PATCH", SERVICE_PATH)
    return [r.body for r in calls if "validateOnly" not in r.query]


def ledger_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lockdown_removes_public_invokers_and_the_flag_and_keeps_evidence(
    cli: Cli,
    google: GoogleStandIn,
    public: ServiceRecord,
    target_args: list[str],
    tmp_path: Path,
    ledger_path: Path,
) -> None:
    """allUsers gone (other members kept), flag false, the IAM write carries the etag read,
    24 h of the service's logs with a manifest that checks, the pre-state in the ledger."""
    etag_before = public.iam["etag"]
    evidence = tmp_path / "evidence"
    result = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(evidence), "--json")
    assert result.exit_code == 0, result.stdout
    assert members(public) == {
        "roles/run.invoker": {"user:ops@example.com"},
        "roles/run.admin": {"user:admin@example.com"},
    }
    assert public.invoker_iam_disabled is False
    (written,) = iam_writes(google)
    assert written["etag"] == etag_before

    logs = [json.loads(line) for line in (evidence / "logs.jsonl").read_text().splitlines()]
    assert [e.get("textPayload") for e in logs] == ["AUTH failed", "GET /api 403"]
    manifest = (evidence / "SHA256SUMS").read_text().splitlines()
    assert {line.split("  ")[1] for line in manifest} == {
        "logs.jsonl",
        "iam-policy.json",
        "service.json",
        "lockdown.json",
    }
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256((evidence / name).read_bytes()).hexdigest() == digest
    saved = json.loads((evidence / "iam-policy.json").read_text())
    assert saved["bindings"] == PUBLIC_BINDINGS

    (entry,) = ledger_lines(ledger_path)
    pre = entry["pre_state"]
    assert isinstance(pre, dict)
    assert pre["iam_policy"]["bindings"] == PUBLIC_BINDINGS
    assert base64.b64decode(pre["iam_policy"]["etag"]) == base64.b64decode(etag_before)
    assert pre["service"]["invoker_iam_disabled"] is True
    assert pre["service"]["ingress"] == "all"
    document = json.loads(result.stdout)
    assert document["data"]["result"]["evidence"]["log_entries"] == 2
    assert any(f"lockdown --revert {document['run_id']}" in n for n in document["notices"])


def test_revert_by_default_undoes_the_last_lockdown_that_changed_something(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """A second lockdown that found the service locked saved a locked pre-state: the default
    revert skips it and restores the public state the first one saved."""
    first = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "1"), "--json")
    cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "2"))
    reverted = cli("lockdown", "--revert", *target_args, "--yes", "--json")
    assert reverted.exit_code == 0, reverted.stdout
    steps = {s["name"]: s for s in json.loads(reverted.stdout)["steps"]}
    assert steps["find lockdown"]["detail"].startswith(json.loads(first.stdout)["run_id"])
    assert public.invoker_iam_disabled is True
    assert "allUsers" in members(public)["roles/run.invoker"]


def test_a_second_lockdown_writes_nothing_and_says_so(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """Idempotent: already locked, no IAM or service write, exit 0 with 'already locked'."""
    assert (
        cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "1")).exit_code == 0
    )
    calls = (len(iam_writes(google)), len(service_writes(google)))
    again = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "2"))
    assert again.exit_code == 0, again.stdout
    assert "already locked down" in again.stdout
    assert (len(iam_writes(google)), len(service_writes(google))) == calls


def test_revert_restores_the_saved_policy_and_flag_exactly(
    cli: Cli,
    google: GoogleStandIn,
    public: ServiceRecord,
    target_args: list[str],
    tmp_path: Path,
) -> None:
    """--revert (default: the last lockdown) puts back the bindings and the flag; every IAM
    write carries the etag read just before it; a second revert writes nothing."""
    locked = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "e"), "--json")
    run_id = json.loads(locked.stdout)["run_id"]
    etag_locked = public.iam["etag"]
    reverted = cli("lockdown", "--revert", *target_args, "--yes", "--json")
    assert reverted.exit_code == 0, reverted.stdout
    assert members(public) == {b["role"]: set(b["members"]) for b in PUBLIC_BINDINGS}
    assert public.invoker_iam_disabled is True
    first, second = iam_writes(google)
    assert second["etag"] == etag_locked and first["etag"] != second["etag"]
    steps = {s["name"]: s for s in json.loads(reverted.stdout)["steps"]}
    assert steps["find lockdown"]["detail"].startswith(run_id)

    again = cli("lockdown", "--revert", run_id, *target_args, "--yes", "--json")
    assert again.exit_code == 0 and "nothing written" in json.loads(again.stdout)["summary"]
    assert len(iam_writes(google)) == 2


def test_revert_of_an_unknown_run_is_refused(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str]
) -> None:
    """No such lockdown in the ledger: exit 3, nothing written."""
    result = cli("lockdown", "--revert", "20990101T000000Z-abcdef", *target_args, "--yes")
    assert result.exit_code == 3
    assert "no record of lockdown 20990101T000000Z-abcdef" in result.stdout
    assert iam_writes(google) == [] and service_writes(google) == []


def test_a_run_id_without_revert_is_a_usage_error(cli: Cli, target_args: list[str]) -> None:
    """`lockdown RUN_ID` alone would be ambiguous: exit 3."""
    assert cli("lockdown", "20990101T000000Z-abcdef", *target_args, "--yes").exit_code == 3


def test_dry_run_changes_nothing(
    cli: Cli,
    google: GoogleStandIn,
    public: ServiceRecord,
    target_args: list[str],
    tmp_path: Path,
    ledger_path: Path,
) -> None:
    """--dry-run: the plan names both changes; the stand-in's policy and flag are as before,
    no evidence directory, no ledger line."""
    evidence = tmp_path / "evidence"
    etag = public.iam["etag"]
    result = cli("lockdown", *target_args, "--dry-run", "--evidence-dir", str(evidence), "--json")
    assert result.exit_code == 0, result.stdout
    plan = {(c["field"], c["before"], c["after"]) for c in json.loads(result.stdout)["plan"]}
    assert ("roles/run.invoker", "allUsers, user:ops@example.com", "user:ops@example.com") in plan
    assert ("invoker_iam_disabled", "true", "false") in plan
    assert public.iam["bindings"] == PUBLIC_BINDINGS and public.iam["etag"] == etag
    assert public.invoker_iam_disabled is True
    assert iam_writes(google) == [] and service_writes(google) == []
    assert not evidence.exists() and not ledger_path.exists()


def test_without_a_terminal_and_without_yes_it_refuses(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """No TTY, no --yes: exit 3, nothing written, no evidence collected."""
    evidence = tmp_path / "evidence"
    result = cli("lockdown", *target_args, "--evidence-dir", str(evidence))
    assert result.exit_code == 3
    assert "no --yes" in result.stdout
    assert iam_writes(google) == [] and service_writes(google) == []
    assert public.invoker_iam_disabled is True and not evidence.exists()


def test_a_concurrent_policy_change_is_re_read_and_kept(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """Another admin grants a role between our read and write: 409 on the stale etag, the
    policy is read again, their grant kept, allUsers still removed."""

    def other_admin(record: ServiceRecord) -> None:
        record.iam["bindings"].append({"role": "roles/run.viewer", "members": ["user:x@y.z"]})

    google.run.concurrent_change(other_admin)
    result = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "e"))
    assert result.exit_code == 0, result.stdout
    assert len(iam_writes(google)) == 2
    assert members(public)["roles/run.viewer"] == {"user:x@y.z"}
    assert members(public)["roles/run.invoker"] == {"user:ops@example.com"}


def test_evidence_goes_beside_the_ledger_by_default(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """Without --evidence-dir: $XDG_STATE_HOME/mlsgw/evidence/<run id>, named in the report."""
    result = cli("lockdown", *target_args, "--yes", "--json")
    document = json.loads(result.stdout)
    directory = tmp_path / "state" / "mlsgw" / "evidence" / document["run_id"]
    assert document["data"]["result"]["evidence"]["directory"] == str(directory)
    assert (directory / "SHA256SUMS").is_file()


def test_evidence_that_cannot_be_read_fails_the_run_but_the_lockdown_stands(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], tmp_path: Path
) -> None:
    """Logging denies the read: exit 1, the reason named, the service locked all the same."""
    google.server.fail(
        "POST", "/v2/entries:list", permission_denied("logging.logEntries.list", PROJECT)
    )
    result = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "e"), "--json")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert "every change is applied, but the evidence could not be collected" in document["summary"]
    assert "logging.logEntries.list" in document["summary"]
    assert public.invoker_iam_disabled is False and "allUsers" not in str(public.iam)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("hours", ["1e308", "inf", "nan", "0", "2161"])
def test_evidence_hours_out_of_range_is_a_usage_error_before_any_change(
    cli: Cli, google: GoogleStandIn, public: ServiceRecord, target_args: list[str], hours: str
) -> None:
    """A number of hours that no log filter can use: exit 3, the service untouched."""
    result = cli("lockdown", *target_args, "--yes", "--evidence-hours", hours)
    assert result.exit_code == 3, result.stdout
    assert "--evidence-hours" in result.stdout + result.stderr
    assert iam_writes(google) == [] and service_writes(google) == []
    assert public.invoker_iam_disabled is True


def test_evidence_that_crashes_is_recorded_and_the_lockdown_can_be_reverted(
    cli: Cli,
    google: GoogleStandIn,
    public: ServiceRecord,
    target_args: list[str],
    tmp_path: Path,
    ledger_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The evidence step raises an unexpected error after the service was locked: exit 1 with
    one JSON document naming it, the ledger line keeps the pre-state and the error, and
    --revert restores the exact public state from it."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr("mlsgw.lockdown.write_evidence", broken)
    result = cli("lockdown", *target_args, "--yes", "--evidence-dir", str(tmp_path / "e"), "--json")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert document["summary"] == (
        "every change is applied, but collect evidence failed: RuntimeError: the disk caught fire"
    )
    assert public.invoker_iam_disabled is False and "allUsers" not in str(public.iam)
    (entry,) = ledger_lines(ledger_path)
    result_line = entry["result"]
    assert isinstance(result_line, dict) and result_line["outcome"] == "failed"
    assert result_line["error"] == "RuntimeError: the disk caught fire"
    assert "post_state" in result_line and entry["pre_state"]

    reverted = cli("lockdown", "--revert", *target_args, "--yes", "--json")
    assert reverted.exit_code == 0, reverted.stdout
    assert public.iam["bindings"] == PUBLIC_BINDINGS
    assert public.invoker_iam_disabled is True and public.ingress == INGRESS_ALL
