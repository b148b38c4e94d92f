"""Every runbook command has help text and is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlsgw.conftest import Cli

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = [
    ("healthcheck",),
    ("rollback",),
    ("traffic",),
    ("restart",),
    ("deploy",),
    ("scale",),
    ("lockdown",),
    ("ledger", "show"),
    ("ledger", "verify"),
    ("audit",),
    ("certcheck",),
    ("backup",),
    ("backup", "list"),
    ("backup", "schedule"),
    ("restore",),
    ("readonly",),
    ("maintenance-mode",),
    ("incident", "open"),
    ("incident", "update"),
    ("incident", "resolve"),
    ("incident", "show"),
    ("incident", "list"),
    ("playbook", "list"),
    ("playbook", "show"),
    ("playbook", "run"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_command_has_help_and_a_readme_mention(cli: Cli, command: tuple[str, ...]) -> None:
    """`--help` works, shows an example, and the README names the command."""
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"mlsgw {' '.join(command)}" in README.read_text()
