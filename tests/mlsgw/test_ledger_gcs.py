"""A ``gs://`` ledger: the real ``google-cloud-storage`` client against the Storage stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsgw.errors import LedgerError
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.ledger.base import head_of
from mlsgw.ledger.gcs import APPEND_ATTEMPTS, HEAD_ENTRIES, HEAD_LAST, GcsLedgerStore
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

BUCKET, OBJECT = "ops-audit", "mlsgw/ledger.jsonl"
URL = f"gs://{BUCKET}/{OBJECT}"
UPLOADS = f"/upload/storage/v1/b/{BUCKET}/o"
FAST = ["--health-interval", "0"]


@pytest.fixture
def bucket(google: GoogleStandIn) -> str:
    """The ledger's bucket, empty, and the demo service to act on."""
    google.storage.add_bucket(BUCKET)
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    return BUCKET


def stored(google: GoogleStandIn) -> bytes:
    obj = google.storage.get(BUCKET, OBJECT)
    assert obj is not None
    return obj.data


def gcs_ledger(google: GoogleStandIn) -> Ledger:
    """The ledger as the CLI opens it with ``--endpoint``: anonymous, over REST."""
    return Ledger.at(URL, {}, Cloud(Target(endpoint=google.url)))


def other_writer_appends(google: GoogleStandIn, tmp_path: Path, command: str) -> None:
    """Another operator's action lands in the object, chained on what is there now, with the
    head metadata mlsgw writes."""
    scratch = tmp_path / "other-writer.jsonl"
    scratch.write_bytes(stored(google) if google.storage.get(BUCKET, OBJECT) else b"")
    Ledger(scratch).append(
        command=command, run_id="other", args={}, plan=[], pre_state={}, result={}
    )
    data = scratch.read_bytes()
    google.storage.put(BUCKET, OBJECT, data, metadata=head_metadata(data))


def head_metadata(data: bytes) -> dict[str, str]:
    """The head metadata mlsgw uploads with ledger bytes ``data``."""
    head = head_of(data)
    return {HEAD_ENTRIES: str(head.entries), HEAD_LAST: head.last}


def test_actions_append_to_a_gs_ledger_that_show_and_verify_read(
    cli: Cli, google: GoogleStandIn, bucket: str, target_args: list[str], ledger_path: Path
) -> None:
    """rollback then restart write to gs://; the first upload creates (ifGenerationMatch=0),
    the second is guarded by the generation it read; no local file is written."""
    assert cli("rollback", *target_args, "--ledger", URL, "--yes", *FAST).exit_code == 0
    created = google.storage.get(BUCKET, OBJECT)
    assert created is not None
    assert cli("restart", *target_args, "--ledger", URL, "--yes", *FAST).exit_code == 0
    uploads = google.server.calls("POST", UPLOADS)
    assert [u.query["ifGenerationMatch"] for u in uploads] == ["0", str(created.generation)]
    assert all(u.query["uploadType"] == "multipart" for u in uploads)
    assert not ledger_path.exists()

    shown = cli("ledger", "show", "--ledger", URL, "--endpoint", google.url, "--json")
    document = json.loads(shown.stdout)
    assert shown.exit_code == 0 and document["data"]["path"] == URL
    assert [e["command"] for e in document["data"]["entries"]] == ["rollback", "restart"]
    human = cli("ledger", "show", "--ledger", URL, "--endpoint", google.url)
    assert URL in human.stdout and "restart" in human.stdout
    verified = cli("ledger", "verify", "--ledger", URL, "--endpoint", google.url)
    assert verified.exit_code == 0, verified.stdout
    assert "INTACT" in verified.stdout and "2 entries" in verified.stdout


def test_verify_detects_an_edited_line_in_a_gs_ledger(
    cli: Cli, google: GoogleStandIn, bucket: str, target_args: list[str]
) -> None:
    """An edit made in the bucket breaks the edited line's own hash: exit 2, line named."""
    for action in (["rollback"], ["traffic", "--to-latest"], ["restart"]):
        assert cli(*action, *target_args, "--ledger", URL, "--yes", *FAST).exit_code == 0
    lines = stored(google).decode().splitlines()
    lines[2] = lines[2].replace('"outcome":"done"', '"outcome":"refused"')
    metadata = dict(google.storage.get(BUCKET, OBJECT).metadata)  # type: ignore[union-attr]
    google.storage.put(BUCKET, OBJECT, ("\n".join(lines) + "\n").encode(), metadata=metadata)
    broken = cli("ledger", "verify", "--ledger", URL, "--endpoint", google.url, "--json")
    assert broken.exit_code == 2
    document = json.loads(broken.stdout)
    assert document["status"] == "broken" and document["data"]["entries"] == 3
    problems = document["data"]["problems"]
    assert [(p["line"], "hash" in p["reason"]) for p in problems] == [(3, True)]


def test_a_concurrent_append_is_re_read_re_chained_and_both_lines_survive(
    cli: Cli, google: GoogleStandIn, bucket: str, target_args: list[str], tmp_path: Path
) -> None:
    """Another writer lands between our read and our upload: 412, re-read, re-chain, retry."""
    assert cli("rollback", *target_args, "--ledger", URL, "--yes", *FAST).exit_code == 0
    google.storage.before_next_upload(lambda _: other_writer_appends(google, tmp_path, "lockdown"))
    result = cli("restart", *target_args, "--ledger", URL, "--yes", *FAST, "--json")
    assert result.exit_code == 0, result.stdout

    uploads = google.server.calls("POST", UPLOADS)
    assert len(uploads) == 3  # rollback, restart (412), restart again
    assert uploads[2].query["ifGenerationMatch"] != uploads[1].query["ifGenerationMatch"]
    ledger = gcs_ledger(google)
    assert [r["command"] for r in ledger.records()] == ["rollback", "lockdown", "restart"]
    verification = ledger.verify()
    assert verification.ok and verification.entries == 3


def test_an_upload_that_landed_before_its_412_is_not_appended_twice(
    google: GoogleStandIn, bucket: str
) -> None:
    """A retried upload whose first try landed sees 412; the re-read shows our line: done."""
    ledger = gcs_ledger(google)
    ledger.append(command="first", run_id="r1", args={}, plan=[], pre_state={}, result={})
    google.storage.before_next_upload(
        lambda data: google.storage.put(BUCKET, OBJECT, data, metadata=head_metadata(data))
    )
    record = ledger.append(command="second", run_id="r2", args={}, plan=[], pre_state={}, result={})
    assert [r["command"] for r in ledger.records()] == ["first", "second"]
    assert ledger.records()[-1] == record
    assert len(google.server.calls("POST", UPLOADS)) == 2
    assert ledger.verify().ok


def test_appending_gives_up_after_a_bounded_number_of_conflicts(
    google: GoogleStandIn, bucket: str, tmp_path: Path
) -> None:
    """When every upload loses the race, the store stops after APPEND_ATTEMPTS uploads."""
    for n in range(APPEND_ATTEMPTS):

        def other_writer_wins(_: bytes, n: int = n) -> None:
            other_writer_appends(google, tmp_path, f"other-{n}")

        google.storage.before_next_upload(other_writer_wins)
    store = GcsLedgerStore(Cloud(Target(endpoint=google.url)).storage(), URL, timeout=5, backoff=0)
    with pytest.raises(LedgerError, match="gave up appending .* other writers"):
        Ledger(store).append(command="mine", run_id="r", args={}, plan=[], pre_state={}, result={})
    assert len(google.server.calls("POST", UPLOADS)) == APPEND_ATTEMPTS
    commands = [r["command"] for r in Ledger(store).records()]
    assert commands == [f"other-{n}" for n in range(APPEND_ATTEMPTS)]
    assert Ledger(store).verify().ok


def test_a_missing_bucket_refuses_the_action_before_any_change(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The ledger cannot be written: exit 3, the bucket named, the service untouched."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    result = cli("restart", *target_args, "--ledger", "gs://no-such-bucket/l.jsonl", "--yes", *FAST)
    assert result.exit_code == 3, result.stdout
    assert "gs://no-such-bucket/l.jsonl" in result.stdout
    assert "bucket does not exist" in result.stdout
    assert [c for c in google.server.calls("PATCH", ".*") if "validateOnly" not in c.query] == []


@pytest.mark.parametrize("url", ["gs://bucket-only", "gs://bucket/", "gs:///object"])
def test_a_malformed_gs_url_is_a_usage_error(cli: Cli, url: str) -> None:
    """No object name (or no bucket): exit 3 before any client is built."""
    result = cli("ledger", "verify", "--ledger", url)
    assert result.exit_code == 3
    assert "gs://BUCKET/OBJECT" in result.stderr


def test_without_an_endpoint_a_gs_ledger_uses_adc_and_says_how_to_log_in(cli: Cli) -> None:
    """No override: Application Default Credentials; none here, so exit 3 with the fix."""
    result = cli("ledger", "show", "--ledger", URL)
    assert result.exit_code == 3
    assert "gcloud auth application-default login" in result.stderr


def test_verify_of_a_missing_gs_ledger_says_missing_and_exits_3(
    cli: Cli, google: GoogleStandIn, bucket: str
) -> None:
    """The bucket exists but the object does not: MISSING, exit 3."""
    result = cli("ledger", "verify", "--ledger", URL, "--endpoint", google.url, "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["status"] == "missing" and URL in document["summary"]


def test_a_removed_last_line_of_a_gs_ledger_is_caught_by_the_object_metadata(
    cli: Cli, google: GoogleStandIn, bucket: str, target_args: list[str]
) -> None:
    """The object rewritten without its last line (metadata kept): BROKEN, exit 2."""
    for action in (["rollback"], ["traffic", "--to-latest"]):
        assert cli(*action, *target_args, "--ledger", URL, "--yes", *FAST).exit_code == 0
    obj = google.storage.get(BUCKET, OBJECT)
    assert obj is not None and obj.metadata[HEAD_ENTRIES] == "2"
    first = obj.data.splitlines()[0] + b"\n"
    google.storage.put(BUCKET, OBJECT, first, metadata=dict(obj.metadata))
    result = cli("ledger", "verify", "--ledger", URL, "--endpoint", google.url)
    assert result.exit_code == 2 and "removed from the end" in result.stdout


def test_a_missing_storage_permission_refuses_the_action_before_any_change(
    cli: Cli, google: GoogleStandIn, bucket: str, target_args: list[str]
) -> None:
    """testIamPermissions lacks storage.objects.create: exit 3, the permission named."""
    google.storage.denied.add("storage.objects.create")
    result = cli("restart", *target_args, "--ledger", URL, "--yes", *FAST, "--json")
    assert result.exit_code == 3, result.stdout
    assert "storage.objects.create" in json.loads(result.stdout)["summary"]
    assert google.server.calls("PATCH", ".*") == []
    assert google.storage.get(BUCKET, OBJECT) is None
