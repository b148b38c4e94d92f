"""One ``--json`` shape for every command: the same top-level keys, always present."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

KEYS = [
    "command",
    "run_id",
    "status",
    "ok",
    "exit_code",
    "summary",
    "target",
    "findings",
    "checks",
    "plan",
    "steps",
    "tables",
    "notices",
    "data",
]


def test_every_command_prints_the_same_top_level_keys(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """A check, an action (dry run), a listing, a verification, the effective config and an
    early error: the same keys in the same order, and exit_code equal to the process's exit
    code."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    missing = str(tmp_path / "none.jsonl")
    runs = [
        ("healthcheck", *target_args),
        ("rollback", *target_args, "--dry-run"),
        ("ledger", "show", "--ledger", missing),
        ("ledger", "verify", "--ledger", missing),
        ("audit", *target_args, "--only", "service"),
        ("certcheck", "127.0.0.1:1"),  # refused: a CRITICAL finding
        ("config", "show"),
        ("config", "check"),
        ("rollback", "--endpoint", google.url),  # no project/region/service: usage error
    ]
    for args in runs:
        result = cli(*args, "--json")
        document = json.loads(result.stdout)
        assert list(document) == KEYS, args
        assert document["exit_code"] == result.exit_code, args
        assert isinstance(document["findings"], list) and isinstance(document["steps"], list)
        assert document["checks"] == document["findings"], args
    assert json.loads(cli(*runs[-1], "--json").stdout)["status"] == "error"


def test_a_check_that_could_not_check_is_unknown_and_another_command_an_error(
    cli: Cli, google: GoogleStandIn
) -> None:
    """Stopped before a report (a bad endpoint): a check's status is the verdict ``unknown``
    (exit 3, as its Nagios line says), an action's is ``error``."""
    check = cli("certcheck", "nohost:notaport", "--json")
    assert check.exit_code == 3 and json.loads(check.stdout)["status"] == "unknown"
    action = cli("rollback", "--endpoint", google.url, "--json")
    assert action.exit_code == 3 and json.loads(action.stdout)["status"] == "error"


def test_a_check_commands_results_are_under_checks_as_the_spec_names_them(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """R-O2: ``{"command", "ok", "status", "checks"|"steps", "run_id"}``: the healthcheck's
    checks are listed under ``checks`` (and, as before, ``findings``)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    document = json.loads(cli("healthcheck", *target_args, "--json").stdout)
    names = {c["name"] for c in document["checks"]}
    assert {"service", "health"} <= names
    assert all({"name", "status", "summary"} <= set(c) for c in document["checks"])
