"""The hash-chained ledger and ``mlsgw ledger show|verify``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
    entries = json.loads(shown.stdout)["entries"]
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
    assert [p["line"] for p in document["problems"]] == [3, 4]


def test_ledger_show_renders_a_table(cli: Cli, ledger_path: Path) -> None:
    """The human view lists entries with command and outcome; --command filters."""
    ledger = Ledger(ledger_path)
    append(ledger, "rollback")
    append(ledger, "deploy")
    result = cli("ledger", "show", "--command", "deploy")
    assert result.exit_code == 0
    assert "deploy" in result.stdout and "rollback" not in result.stdout


def test_ledger_path_from_flag_and_env(cli: Cli, tmp_path: Path, monkeypatch: object) -> None:
    """--ledger (or MLSGW_LEDGER) picks the file; a missing ledger verifies as empty."""
    path = tmp_path / "elsewhere.jsonl"
    append(Ledger(path), "a")
    result = cli("ledger", "verify", "--ledger", str(path), "--json")
    assert json.loads(result.stdout)["entries"] == 1
    empty = cli("ledger", "verify", "--ledger", str(tmp_path / "none.jsonl"))
    assert empty.exit_code == 0 and "0 entries" in empty.stdout
