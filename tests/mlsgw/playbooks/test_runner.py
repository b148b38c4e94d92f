"""How a ``run`` step's command line is built and shown: pure logic, no I/O."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperGroup

from mlsgw.cli import app
from mlsgw.playbooks.catalog import CommandCatalog
from mlsgw.playbooks.runner import RunOptions, command_argv, redact
from mlsgw.playbooks.schema import Step, StepKind


@pytest.fixture(scope="module")
def catalog() -> CommandCatalog:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return CommandCatalog(root)


def run_step(catalog: CommandCatalog, line: str) -> Step:
    return Step(1, StepKind.RUN, line, "s", command=catalog.resolve(line))


def test_flags_are_added_only_where_the_command_takes_them(catalog: CommandCatalog) -> None:
    """healthcheck has no --yes/--dry-run; readonly has both; --json always; a flag the line
    sets itself is not overridden by the forwarded one."""
    options = RunOptions(
        yes=True, dry_run=True, forwarded={"--project": "p", "--probe-key": "k", "--url": "u"}
    )
    health = command_argv(run_step(catalog, "mlsgw healthcheck --url mine"), {}, options)
    assert health == (
        "healthcheck",
        "--url",
        "mine",
        "--project",
        "p",
        "--probe-key",
        "k",
        "--json",
    )
    readonly = command_argv(run_step(catalog, "mlsgw readonly on"), {}, options)
    assert readonly == (
        "readonly",
        "on",
        "--project",
        "p",
        "--url",
        "u",
        "--json",
        "--yes",
        "--dry-run",
    )


def test_placeholders_are_filled_word_by_word(catalog: CommandCatalog) -> None:
    """An answer with spaces stays one argument."""
    step = run_step(
        catalog, 'mlsgw incident open --sev 1 --title "Data corruption" --impact "{impact}"'
    )
    argv = command_argv(step, {"impact": "rows lost; writes stopped"}, RunOptions())
    assert argv[-3:] == ("--impact", "rows lost; writes stopped", "--json")
    with pytest.raises(KeyError):
        command_argv(step, {}, RunOptions())


def test_secret_values_are_redacted_in_both_spellings() -> None:
    secret = frozenset({"--probe-key", "--webhook"})
    argv = ("healthcheck", "--probe-key", "abc", "--webhook=https://h/x", "--url", "u")
    assert redact(argv, secret) == (
        "healthcheck",
        "--probe-key",
        "***",
        "--webhook=***",
        "--url",
        "u",
    )
