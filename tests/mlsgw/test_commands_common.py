"""The options every action command shares (``mlsgw.commands.common.ActionOptions``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from mlsgw.commands.common import ActionOptions, action_command, runbook_command
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.mlsgw.test_cli_docs import ALL
from tests.stand_ins.google import GoogleStandIn

ACTIONS = [
    ["rollback"],
    ["traffic", "--to-latest"],
    ["restart"],
    ["deploy", "--image", "img:3"],
    ["scale", "--max", "20"],
]


@pytest.mark.parametrize("args", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_every_action_resolves_its_target_from_the_shared_flags_and_config(
    cli: Cli, google: GoogleStandIn, tmp_path: Path, args: list[str]
) -> None:
    """Flags and [ops] from --config (region here) all reach the target the action reports."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    config = tmp_path / "ops.toml"
    config.write_text(f'[ops]\nregion = "{REGION}"\n')
    ledger = tmp_path / "elsewhere.jsonl"
    result = cli(
        *args,
        *("--project", PROJECT, "--service", SERVICE, "--endpoint", google.url),
        *("--monitoring-endpoint", "127.0.0.1:9"),
        *("--url", "http://127.0.0.1:9", "--timeout", "3.5", "--ledger", str(ledger)),
        *("--config", str(config), "--dry-run", "--json"),
    )
    assert result.exit_code == 0, result.stdout
    target = json.loads(result.stdout)["target"]
    expected = {
        "project": PROJECT,
        "region": REGION,
        "service": SERVICE,
        "url": "http://127.0.0.1:9",
        "endpoint": google.url,
        "monitoring_endpoint": "127.0.0.1:9",
        "ledger": str(ledger),
        "timeout": 3.5,
    }
    assert {k: target[k] for k in expected} == expected


WITH_ENDPOINT = [
    path
    for path, command in ALL
    if any("--endpoint" in param.opts for param in getattr(command, "params", ()))
]
"""Every command of the app that takes ``--endpoint``, found from the app itself."""


def test_the_commands_with_an_endpoint_are_discovered_from_the_app() -> None:
    """The actions, the backups, the audit and the healthcheck are among them."""
    expected = {("rollback",), ("restore",), ("backup", "list"), ("audit",), ("healthcheck",)}
    assert expected <= set(WITH_ENDPOINT)


@pytest.mark.parametrize("command", WITH_ENDPOINT, ids=[" ".join(c) for c in WITH_ENDPOINT])
def test_every_command_with_an_endpoint_also_takes_a_monitoring_endpoint(
    cli: Cli, command: tuple[str, ...]
) -> None:
    """Both endpoint overrides are parsed (not "No such option", exit 3); ``--help`` after
    them stops before anything runs."""
    overrides = ("--endpoint", "http://127.0.0.1:9", "--monitoring-endpoint", "127.0.0.1:9")
    result = cli(*command, *overrides, "--help")
    assert "No such option" not in result.output
    assert result.exit_code == 0, result.output


def test_a_command_may_not_redeclare_a_shared_option() -> None:
    """Declaring --project again would silently shadow the shared flag: refused at import."""

    def clashing(project: str | None = None, *, options: ActionOptions) -> None:
        """Example: none"""

    with pytest.raises(TypeError, match="project"):
        action_command(clashing)


def test_an_action_without_health_checks_offers_no_health_interval() -> None:
    """--health-interval paces the /health checks after a change: an action that runs none
    (the restore drill) does not offer it, the others keep it with --dry-run and --yes."""

    def drill(*, options: ActionOptions) -> None:
        """Example: none"""

    def deploy(*, options: ActionOptions) -> None:
        """Example: none"""

    quiet = inspect.signature(
        runbook_command(("project",), action=True, health_checks=False)(drill)
    )
    checked = inspect.signature(runbook_command(("project",), action=True)(deploy))
    assert {"dry_run", "yes"} <= set(quiet.parameters)
    assert "health_interval" not in quiet.parameters
    assert "health_interval" in checked.parameters
