"""``mlsgw playbook list|show|run NAME`` (R-K11): the runbook's procedures as executable steps."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from mlsgw import output
from mlsgw.commands.common import (
    PANEL_SAFETY,
    CommandOptions,
    RunbookCommand,
    confirm,
    fail_early,
    run_command,
    runbook_command,
    stdin_is_tty,
)
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.errors import Refused, UsageError
from mlsgw.playbooks.catalog import CommandCatalog
from mlsgw.playbooks.invoke import Invocation, invoke
from mlsgw.playbooks.runner import RunOptions, run_playbook
from mlsgw.playbooks.schema import Playbook, PlaybookError, load_all, load_playbook
from mlsgw.report import ActionReport, Outcome, Report, Table
from mlsgw.runbook.context import RunContext
from mlsgw.target import OPS_FIELDS, SECRET_FIELDS, flag_name

app = typer.Typer(
    help="The runbook's procedures as playbooks: list, show, run step by step.",
    no_args_is_help=True,
    cls=MlsgwGroup,
)

PLAYBOOK_DIR_ENV = "MLSGW_PLAYBOOKS"
FORWARDED_FIELDS = tuple(f for f in OPS_FIELDS if f != "contacts")
"""Target flags ``playbook run`` takes and passes on to every command of the playbook."""
READ_FIELDS = ("ledger", "endpoint", "timeout")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The playbook (see `list`).")]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help=f"Directory of playbooks (default: ${PLAYBOOK_DIR_ENV}, else the playbooks/ "
        "directory of this mlsgw checkout, else ./playbooks).",
    ),
]


def default_directory() -> Path:
    """``$MLSGW_PLAYBOOKS``, else ``playbooks/`` beside the ``mlsgw`` package (a checkout or
    an editable install), else ``./playbooks``."""
    if os.environ.get(PLAYBOOK_DIR_ENV):
        return Path(os.environ[PLAYBOOK_DIR_ENV])
    shipped = Path(__file__).resolve().parents[2] / "playbooks"
    return shipped if shipped.is_dir() else Path("playbooks")


def catalog() -> CommandCatalog:
    """The commands of this CLI (imported here: the CLI module imports this one)."""
    from mlsgw.cli import app as cli_app

    root = typer.main.get_command(cli_app)
    assert isinstance(root, TyperGroup)
    return CommandCatalog(root)


def _find(directory: Path, name: str) -> Playbook:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise UsageError(f"no playbook {name!r} in {directory} (known: {known})")
    try:
        return load_playbook(path, catalog())
    except PlaybookError as exc:
        raise UsageError(str(exc)) from None


def _steps_table(playbook: Playbook) -> Table:
    rows = tuple(
        (
            str(s.number),
            s.kind.value,
            s.name,
            s.text if s.kind.value != "note" else s.text.splitlines()[0],
            s.on_failure or "",
        )
        for s in playbook.steps
    )
    return Table(playbook.title, ("#", "kind", "step", "does", "on failure"), rows)


def list_run(ctx: RunContext, directory: Path) -> ActionReport:
    """Every playbook with its title and step count; invalid ones with their error (exit 1)."""
    try:
        valid, invalid = load_all(directory, catalog())
    except PlaybookError as exc:
        raise UsageError(str(exc)) from None
    rows = tuple((p.name, p.title, str(len(p.steps))) for p in valid)
    problems = tuple(str(e) for e in invalid)
    return ActionReport(
        "playbook list",
        Outcome.FAILED if problems else Outcome.DONE,
        f"{len(valid)} playbook(s) in {directory}"
        + (f", {len(problems)} invalid" if problems else ""),
        ctx.run_id,
        tables=(Table("Playbooks", ("name", "title", "steps"), rows),),
        notices=problems,
        data={
            "directory": str(directory),
            "playbooks": [
                {
                    "name": p.name,
                    "title": p.title,
                    "description": p.description,
                    "steps": len(p.steps),
                    "path": str(p.path),
                }
                for p in valid
            ],
            "invalid": list(problems),
        },
    )


def show_run(ctx: RunContext, playbook: Playbook) -> ActionReport:
    """The playbook's steps, in order."""
    return ActionReport(
        "playbook show",
        Outcome.DONE,
        f"{playbook.name}: {len(playbook.steps)} step(s) — {playbook.description}",
        ctx.run_id,
        tables=(_steps_table(playbook),),
        data={
            "playbook": playbook.name,
            "title": playbook.title,
            "description": playbook.description,
            "steps": [
                {
                    "number": s.number,
                    "kind": s.kind.value,
                    "name": s.name,
                    "text": s.text,
                    "on_failure": s.on_failure,
                    "continue_on_failure": s.continue_on_failure,
                    "id": s.answer_id,
                    "default": s.default,
                }
                for s in playbook.steps
            ],
        },
    )


class TerminalPrompter:
    """Asks on the terminal; :class:`Refused` without one (the operator is not there)."""

    def confirm(self, question: str) -> bool:
        """Yes or no; ``no`` is an answer, not a refusal."""
        if not stdin_is_tty():
            raise Refused("no terminal to confirm this checklist item on, and no --yes")
        try:
            confirm(f"Check: {question}", yes=False)
        except Refused as exc:
            if "not confirmed" in str(exc):
                return False
            raise
        return True

    def ask(self, question: str, default: str | None) -> str:
        """A free-text answer (the default on Enter)."""
        if not stdin_is_tty():
            raise Refused("no terminal to answer on")
        answer: str = typer.prompt(question, default=default, err=True)
        return answer


def _parse_answers(values: list[str]) -> dict[str, str]:
    answers = {}
    for value in values:
        key, sep, answer = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--answer takes ID=VALUE, got {value!r}")
        answers[key.strip()] = answer
    return answers


def _run(command: str, options: CommandOptions, body: Callable[[RunContext], Report]) -> None:
    run_command(command, options, body, needs_service=False)


@app.command("list", cls=RunbookCommand)
@runbook_command(READ_FIELDS)
def list_(directory: DirOpt = None, *, options: CommandOptions) -> None:
    """List the playbooks with their titles and step counts.

    Invalid playbooks are listed with their error (file, step, field).

    Exit codes: 0 every playbook is valid, 1 some are invalid, 3 no such directory or usage
    error.

    Example: mlsgw playbook list --json
    """
    where = directory or default_directory()
    _run("playbook list", options, lambda ctx: list_run(ctx, where))


@app.command("show", cls=RunbookCommand)
@runbook_command(READ_FIELDS)
def show(name: NameArg, directory: DirOpt = None, *, options: CommandOptions) -> None:
    """Show a playbook's steps in order and what to do when one fails.

    Exit codes: 0 shown, 3 no such or invalid playbook, usage error.

    Example: mlsgw playbook show complete-service-outage
    """
    where = directory or default_directory()
    try:
        playbook = _find(where, name)
    except UsageError as exc:
        fail_early("playbook show", exc, as_json=options.as_json)
    _run("playbook show", options, lambda ctx: show_run(ctx, playbook))


@app.command("run", cls=RunbookCommand)
@runbook_command(FORWARDED_FIELDS)
def run(
    name: NameArg,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List the steps and run only the commands that have --dry-run, with it; "
            "nothing is changed or recorded.",
            rich_help_panel=PANEL_SAFETY,
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Pass --yes to every command, confirm checklist items, answer questions "
            "with their defaults.",
            rich_help_panel=PANEL_SAFETY,
        ),
    ] = False,
    answer: Annotated[
        list[str] | None,
        typer.Option("--answer", metavar="ID=VALUE", help="Answer a question up front."),
    ] = None,
    directory: DirOpt = None,
    *,
    options: CommandOptions,
) -> None:
    """Run a playbook step by step, stopping at the first failure.

    Live progress; every step goes to the ledger; a failed step ends the run with what to do
    next. The target flags given here are passed to every command of the playbook.

    Exit codes: 0 every step passed (or dry run), 1 a step failed, 3 refused (no terminal for
    a check or question, a command refused, no ledger, invalid playbook, usage error).

    Example: mlsgw playbook run morning-health-check --yes
    """
    where = directory or default_directory()
    try:
        playbook = _find(where, name)
        answers = _parse_answers(answer or [])
    except UsageError as exc:
        fail_early("playbook run", exc, as_json=options.as_json)
    forwarded = {
        flag_name(field): str(value)
        for field, value in options.flags.items()
        if value is not None and value != ""
    }
    if options.config is not None:
        forwarded["--config"] = str(options.config)
    run_options = RunOptions(
        dry_run=dry_run,
        yes=yes,
        answers=answers,
        forwarded=forwarded,
        secret_flags=frozenset(flag_name(f) for f in SECRET_FIELDS),
    )
    root = catalog().root

    def body(ctx: RunContext) -> Report:
        def run_line(argv: Sequence[str]) -> Invocation:
            return invoke(root, argv)

        return run_playbook(
            ctx,
            playbook,
            run_options,
            invoke=run_line,
            prompt=TerminalPrompter(),
            display=output.StepPrinter(ctx.reporter, enabled=not options.as_json),
        )

    _run("playbook run", options, body)
