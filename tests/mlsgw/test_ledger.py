"""The hash-chained ledger and ``mlsgw ledger show|verify``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlsgw.errors import LedgerError
from mlsgw.ledger import GENESIS, Ledger
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

FAST = ["--health-interval", "0"]


def append(ledger: Ledger, command: str, **result: object) -> None:
    ledger.append(
        command=command,
        run_id=f"run-{command}",
        args={"service_name": "s"},
        plan=[],
        pre_state={},
        result={"outcome": "done", **result},
    )


def test_lines_are_chained_by_the_hash_of_the_previous_line(tmp_path: Path) -> None:
    """prev of line 1 is 64 zeros; prev of line n is sha256 of line n-1's bytes."""
    ledger = Ledger(tmp_path / "l.jsonl")
    append(ledger, "a")
    append(ledger, "b")
    lines = (tmp_path / "l.jsonl").read_bytes().splitlines()
    assert json.loads(lines[0])["prev"] == GENESIS
    assert json.loads(lines[1])["prev"] == hashlib.sha256(lines[0]).hexdigest()
    assert ledger.verify().ok and ledger.verify().entries == 2


def test_an_edited_last_line_is_caught_by_its_own_hash(tmp_path: Path) -> None:
    """Editing the newest line (no successor to notice) breaks its own hash."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    append(ledger, "a")
    path.write_text(path.read_text().replace('"outcome":"done"', '"outcome":"failed"'))
    problems = ledger.verify().problems
    assert [(p.line, "hash" in p.reason) for p in problems] == [(1, True)]


def test_a_rehashed_edit_is_caught_by_the_next_line(tmp_path: Path) -> None:
    """An edit with a recomputed own hash still breaks the next line's prev."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    append(ledger, "a")
    append(ledger, "b")
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["result"]["outcome"] = "failed"
    del record["hash"]
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[0] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    assert [p.line for p in ledger.verify().problems] == [2]


def test_a_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    """Deleting a line in the middle is detected at the line after it."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    for name in ("a", "b", "c"):
        append(ledger, name)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert [p.line for p in ledger.verify().problems] == [2]


def test_last_known_good_is_the_newest_for_that_service(tmp_path: Path) -> None:
    """last_known_good reads the newest result naming a known-good revision."""
    ledger = Ledger(tmp_path / "l.jsonl")
    append(ledger, "deploy", known_good_revision="s-1")
    append(ledger, "rollback", known_good_revision="s-2")
    append(ledger, "restart")
    assert ledger.last_known_good("s") == "s-2"
    assert ledger.last_known_good("other") is None


def test_every_action_leaves_a_line_and_verify_detects_an_edit(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """rollback, traffic, restart, deploy, scale each append; an edited line fails verify (2)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    for args in (
        ["rollback"],
        ["traffic", "--to-latest"],
        ["restart"],
        ["deploy", "--image", "img:3"],
        ["scale", "--max", "20"],
    ):
        result = cli(*args, *target_args, "--yes", *FAST)
        assert result.exit_code == 0, (args, result.stdout)
    shown = cli("ledger", "show", "--json")
    entries = json.loads(shown.stdout)["data"]["entries"]
    assert [e["command"] for e in entries] == ["rollback", "traffic", "restart", "deploy", "scale"]
    assert all(e["principal"] and e["run_id"] and e["pre_state"] for e in entries)
    assert entries[0]["args"]["service_name"].endswith(f"/services/{SERVICE}")
    verified = cli("ledger", "verify")
    assert (
        verified.exit_code == 0 and "INTACT" in verified.stdout and "5 entries" in verified.stdout
    )

    lines = ledger_path.read_text().splitlines()
    lines[2] = lines[2].replace('"outcome":"done"', '"outcome":"refused"')
    ledger_path.write_text("\n".join(lines) + "\n")
    broken = cli("ledger", "verify", "--json")
    assert broken.exit_code == 2
    document = json.loads(broken.stdout)
    assert document["status"] == "broken"
    assert [f["name"] for f in document["findings"]] == ["line 3", "line 4"]
    assert [p["line"] for p in document["data"]["problems"]] == [3, 4]


def test_ledger_show_renders_a_table(cli: Cli, ledger_path: Path) -> None:
    """The human view lists entries with command and outcome; --command filters."""
    ledger = Ledger(ledger_path)
    append(ledger, "rollback")
    append(ledger, "deploy")
    result = cli("ledger", "show", "--command", "deploy")
    assert result.exit_code == 0
    assert "deploy" in result.stdout and "rollback" not in result.stdout


def test_ledger_path_from_flag_and_env(cli: Cli, tmp_path: Path, monkeypatch: object) -> None:
    """--ledger (or MLSGW_LEDGER) picks the file."""
    path = tmp_path / "elsewhere.jsonl"
    append(Ledger(path), "a")
    result = cli("ledger", "verify", "--ledger", str(path), "--json")
    assert json.loads(result.stdout)["data"]["entries"] == 1


def test_a_removed_last_line_is_caught_by_the_head_record(tmp_path: Path) -> None:
    """The chain of the remaining lines is valid; the head beside the file says one is gone."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    for name in ("a", "b", "c"):
        append(ledger, name)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    problems = ledger.verify().problems
    assert [p.line for p in problems] == [3]
    assert "1 line(s) removed from the end" in problems[0].reason


def test_a_removed_head_record_is_reported(tmp_path: Path) -> None:
    """Deleting the head with the last line must not pass: no head, no clean verdict."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    append(ledger, "a")
    (tmp_path / "l.jsonl.head").unlink()
    assert [p.reason.startswith("no head record") for p in ledger.verify().problems] == [True]


def test_verify_on_a_missing_ledger_says_missing_and_exits_3(cli: Cli, tmp_path: Path) -> None:
    """No file at the path: MISSING (exit 3), never INTACT with 0 entries."""
    path = tmp_path / "none.jsonl"
    result = cli("ledger", "verify", "--ledger", str(path))
    assert result.exit_code == 3
    assert "MISSING" in result.stdout and str(path) in result.stdout
    document = json.loads(cli("ledger", "verify", "--ledger", str(path), "--json").stdout)
    assert document["status"] == "missing" and document["exit_code"] == 3


def test_verify_of_a_truncated_ledger_exits_2(
    cli: Cli, google: GoogleStandIn, target_args: list[str], ledger_path: Path
) -> None:
    """Two actions, the second's line removed by hand: BROKEN, exit 2."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    for args in (["rollback"], ["traffic", "--to-latest"]):
        assert cli(*args, *target_args, "--yes", *FAST).exit_code == 0
    first = ledger_path.read_text().splitlines()[0]
    ledger_path.write_text(first + "\n")
    result = cli("ledger", "verify")
    assert result.exit_code == 2 and "removed from the end" in result.stdout


def test_an_unwritable_ledger_refuses_the_action_before_any_change(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """The ledger's directory cannot be created: exit 3, the reason named, service untouched."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ledger = blocker / "ledger.jsonl"
    result = cli("restart", *target_args, "--ledger", str(ledger), "--yes", *FAST, "--json")
    assert result.exit_code == 3, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] == "refused"
    assert "ledger cannot be written" in document["summary"] and str(ledger) in document["summary"]
    assert google.server.calls("PATCH", ".*") == []


BAD_LINES = [
    (b"[1,2]", "not a JSON object (a JSON array)"),
    (b"null", "not a JSON object (a JSON null)"),
    (b'"text"', "not a JSON object (a JSON string)"),
    (b"\xff\xfe\x00", "not UTF-8 text"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8 text"),  # UTF-16 JSON: json.loads(bytes) would take it
    (b'{"time": ', "not JSON"),
]


def _ledger_with_bad_line(path: Path, bad: bytes) -> Ledger:
    """A ledger of one good record followed by ``bad`` on line 2."""
    ledger = Ledger(path)
    append(ledger, "rollback", known_good_revision="rev-1")
    with path.open("ab") as handle:
        handle.write(bad + b"\n")
    return ledger


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_records_name_a_line_that_is_not_a_utf8_json_object(
    tmp_path: Path, bad: bytes, reason: str
) -> None:
    """Readers get a LedgerError naming the file, the line and what is wrong, never a
    non-dict record or a decoding traceback."""
    path = tmp_path / "l.jsonl"
    ledger = _ledger_with_bad_line(path, bad)
    with pytest.raises(LedgerError) as caught:
        ledger.records()
    assert str(caught.value).startswith(f"{path}:2: {reason}")
    with pytest.raises(LedgerError):
        ledger.last_known_good("s")


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_verify_reports_a_line_that_is_not_a_utf8_json_object(
    cli: Cli, tmp_path: Path, bad: bytes, reason: str
) -> None:
    """``ledger verify``: BROKEN, exit 2, with the bad line and what it is."""
    path = tmp_path / "l.jsonl"
    _ledger_with_bad_line(path, bad)
    result = cli("ledger", "verify", "--ledger", str(path), "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["status"] == "broken"
    problems = document["data"]["problems"]
    assert problems[0]["line"] == 2 and problems[0]["reason"].startswith(reason)


@pytest.mark.parametrize("bad", [b"[1,2]", b"null", b"\xff\xfe\x00"])
@pytest.mark.parametrize(
    "command", [["ledger", "show"], ["incident", "list"], ["incident", "show", "INC-1"]]
)
def test_ledger_readers_refuse_a_line_that_is_not_a_utf8_json_object(
    cli: Cli, tmp_path: Path, bad: bytes, command: list[str]
) -> None:
    """As for a line that is not JSON: exit 3 and one JSON document naming the line."""
    path = tmp_path / "l.jsonl"
    _ledger_with_bad_line(path, bad)
    result = cli(*command, "--ledger", str(path), "--json")
    assert result.exit_code == 3, result.output
    assert f"{path}:2: not " in json.loads(result.stdout)["summary"]


@pytest.mark.parametrize("bad", [b"[1,2]", b"\xff\xfe\x00"])
@pytest.mark.parametrize("command", [["rollback"], ["lockdown", "--revert"]])
def test_actions_reading_the_ledger_refuse_a_bad_line_before_any_change(
    cli: Cli,
    google: GoogleStandIn,
    target_args: list[str],
    tmp_path: Path,
    bad: bytes,
    command: list[str],
) -> None:
    """rollback and lockdown --revert look for the last good state: exit 3, nothing changed."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    path = tmp_path / "l.jsonl"
    _ledger_with_bad_line(path, bad)
    result = cli(*command, *target_args, "--ledger", str(path), "--yes", *FAST, "--json")
    assert result.exit_code == 3, result.output
    assert f"{path}:2: not " in json.loads(result.stdout)["summary"]
    assert google.server.calls("PATCH", ".*") == []
    assert google.server.calls("POST", ".*") == []
