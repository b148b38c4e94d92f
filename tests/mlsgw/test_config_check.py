"""``mlsgw config check --json`` and ``config show --json``: the common document of every
command, valid or not."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mlsgw.conftest import Cli

RNOSTR_EXAMPLE = Path(__file__).parents[1] / "fixtures" / "rnostr.toml"


def test_a_valid_config_is_done_with_its_file_backend_and_ignored_keys(cli: Cli) -> None:
    """Valid: exit 0, status done, ok; the file, the store backend and the rnostr keys mlsgw
    accepts but does not use under ``data``."""
    result = cli("config", "check", str(RNOSTR_EXAMPLE), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "config check"
    assert (document["status"], document["ok"], document["exit_code"]) == ("done", True, 0)
    assert document["findings"] == []
    data = document["data"]
    assert data["source"] == str(RNOSTR_EXAMPLE)
    assert data["store_backend"] == "firestore"
    ignored = " ".join(data["ignored"])
    assert "[count]" in ignored and "data.db_query_timeout" in ignored


def test_an_invalid_config_fails_with_one_critical_finding_per_problem(
    cli: Cli, tmp_path: Path
) -> None:
    """Invalid: exit 1, status failed, not ok; each problem is a critical finding naming the
    file and the key, and nothing is printed on stderr."""
    bad = tmp_path / "typo.toml"
    bad.write_text("[network]\nprot = 8080\n[information]\nnmae = 'x'\n")
    result = cli("config", "check", "-c", str(bad), "--json")
    assert result.exit_code == 1
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert (document["status"], document["ok"], document["exit_code"]) == ("failed", False, 1)
    assert document["data"]["source"] == str(bad)
    summaries = [f["summary"] for f in document["findings"]]
    assert {f["status"] for f in document["findings"]} == {"critical"}
    assert any(f"{bad}: unknown key 'network.prot'" in s for s in summaries)
    assert any(f"{bad}: unknown key 'information.nmae'" in s for s in summaries)


def test_the_human_report_of_an_invalid_config_lists_the_problems_on_stderr(
    cli: Cli, tmp_path: Path
) -> None:
    """Without ``--json``, as before: exit 1 and the problems on stderr, nothing on stdout."""
    bad = tmp_path / "typo.toml"
    bad.write_text("[network]\nprot = 8080\n")
    result = cli("config", "check", str(bad))
    assert result.exit_code == 1 and result.stdout == ""
    assert f"{bad}: unknown key 'network.prot'" in result.stderr


def test_two_different_files_are_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    """FILE and --config naming two files: exit 3, and with ``--json`` an error document."""
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    result = cli("config", "check", str(one), "-c", str(two), "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["status"] == "error" and "config file once" in document["summary"]


def test_config_show_json_of_an_invalid_config_fails_with_the_problems_as_findings(
    cli: Cli, tmp_path: Path
) -> None:
    """``config show --json`` on an invalid file: exit 1 and one document, status failed, each
    problem a critical finding, as ``config check --json`` (nothing on stderr)."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[ops\nx=1")
    result = cli("config", "show", "--config", str(bad), "--json")
    assert result.exit_code == 1
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["command"] == "config show"
    assert (document["status"], document["ok"], document["exit_code"]) == ("failed", False, 1)
    assert document["data"]["source"] == str(bad)
    [finding] = document["findings"]
    assert finding["status"] == "critical"
    assert finding["summary"].startswith(f"{bad}: invalid TOML")


def test_config_show_of_an_invalid_config_lists_the_problems_on_stderr(
    cli: Cli, tmp_path: Path
) -> None:
    """Without ``--json``: exit 1, the problems on stderr, nothing on stdout."""
    bad = tmp_path / "typo.toml"
    bad.write_text("[network]\nprot = 8080\n")
    result = cli("config", "show", "-c", str(bad))
    assert result.exit_code == 1 and result.stdout == ""
    assert f"{bad}: unknown key 'network.prot'" in result.stderr
