"""Every command has complete, clean help and is documented in the README. The commands are
found from the Typer app itself, so a new command cannot be forgotten here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mlsgw.cli import app
from tests.mlsgw.conftest import Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _walk(command: Any, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found.append(((*prefix, name), sub))
        found.extend(_walk(sub, (*prefix, name)))
    return found


ROOT = typer.main.get_command(app)
ALL = _walk(ROOT, ())
COMMANDS = [
    path
    for path, command in ALL
    if not getattr(command, "commands", None) or getattr(command, "invoke_without_command", False)
]
"""Everything a user runs: leaf commands, and groups that act on their own (``backup``)."""
GROUPS = [(), *(path for path, command in ALL if getattr(command, "commands", None))]


def test_the_commands_are_discovered_from_the_app() -> None:
    """The relay, the config commands and the runbook are all found."""
    expected = {("serve",), ("config", "check"), ("healthcheck",), ("ledger", "verify")}
    assert expected | {("backup",), ("backup", "list"), ("restore",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_command_has_help_and_a_readme_mention(cli: Cli, command: tuple[str, ...]) -> None:
    """`--help` works, states the exit codes, shows an example; the README names the command."""
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout
    assert "Example:" in result.stdout
    assert f"mlsgw {' '.join(command)}" in README.read_text()


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_command_help_states_its_exit_codes_once(command: tuple[str, ...]) -> None:
    """One "Exit codes: …" statement, no second sentence about exits that could disagree."""
    text = dict(ALL)[command].help or ""
    assert len(re.findall(r"\bExit\b", text)) == 1, text
    assert text.count("Exit codes:") == 1, text


@pytest.mark.parametrize(
    "path", [*GROUPS, *COMMANDS], ids=[" ".join(p) or "mlsgw" for p in [*GROUPS, *COMMANDS]]
)
def test_help_shows_no_type_placeholder_for_flags(
    cli: Cli, path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On/off flags take no value, so their help shows none (no `<bool>`)."""
    monkeypatch.setenv("COLUMNS", "200")
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout


@pytest.mark.parametrize("group", GROUPS, ids=[" ".join(g) or "mlsgw" for g in GROUPS])
def test_command_summaries_are_whole_sentences_on_one_line(
    cli: Cli, group: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a group's command list each summary is one line ending a sentence, never the first
    line of a paragraph broken mid-sentence."""
    monkeypatch.setenv("COLUMNS", "250")
    result = cli(*group, "--help")
    panel = result.stdout.split("Commands")[1].split("╰")[0]
    rows = [line.strip("│ ").rstrip() for line in panel.splitlines()[1:] if line.strip("│ ")]
    names = {path[-1] for path in COMMANDS + GROUPS if path[:-1] == group and path}
    assert rows and all(row.split()[0] in names for row in rows), rows
    assert all(re.search(r"[.)`]$", row) for row in rows), rows


def test_options_are_grouped_where_they_belong(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger is not an output option and the health interval not a safety option."""
    monkeypatch.setenv("COLUMNS", "200")
    text = cli("rollback", "--help").stdout
    panels = dict(re.findall(r"╭─ (\w[\w ()-]*?) ─+╮\n(.*?)╰", text, flags=re.S))
    assert "--ledger" in panels["Ledger"]
    assert "--json" in panels["Output"] and "--ledger" not in panels["Output"]
    assert "--dry-run" in panels["Safety"] and "--health-interval" not in panels["Safety"]
    checks = dict(
        re.findall(
            r"╭─ (\w[\w ()-]*?) ─+╮\n(.*?)╰", cli("healthcheck", "--help").stdout, flags=re.S
        )
    )
    assert "--nagios" in checks["Output"] and "--json" in checks["Output"]
