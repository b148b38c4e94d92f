"""Rendering (R-O2, R-O3): Rich reports on stdout, ``--json``, ``--nagios``, progress on stderr.

The only module that imports Rich. ``NO_COLOR`` is honoured by Rich itself; JSON and Nagios
output are plain ``print``-level text, never mixed with progress or colour. Progress spinners
appear only when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status as RichStatus
from rich.table import Table as RichTable

from mlsgw.errors import MlsgwError
from mlsgw.report import (
    NAGIOS_WORD,
    ActionReport,
    Change,
    CheckReport,
    CheckResult,
    Outcome,
    Report,
    Reporter,
    Status,
    Verdict,
)
from mlsgw.target import Target

STATUS_STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "magenta",
    Status.INFO: "cyan",
    Status.SKIPPED: "dim",
}
VERDICT_STYLE = {
    Verdict.GREEN: "bold green",
    Verdict.YELLOW: "bold yellow",
    Verdict.RED: "bold red",
    Verdict.UNKNOWN: "bold magenta",
}
OUTCOME_STYLE = {
    Outcome.DONE: "bold green",
    Outcome.PLANNED: "bold cyan",
    Outcome.FAILED: "bold red",
    Outcome.REFUSED: "bold yellow",
}


def stdout_console() -> Console:
    """The report console (stdout)."""
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    """The console for progress and errors (stderr)."""
    return Console(stderr=True, highlight=False)


class SpinnerReporter:
    """A :class:`~mlsgw.report.Reporter` showing a spinner on stderr, only on a terminal."""

    def __init__(self, console: Console, status: RichStatus | None) -> None:
        self._console = console
        self._status = status

    def step(self, message: str) -> None:
        """Show ``message`` as the current activity."""
        if self._status is not None:
            self._status.update(escape(message))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hide the spinner (e.g. while asking a question)."""
        if self._status is None:
            yield
            return
        self._status.stop()
        try:
            yield
        finally:
            self._status.start()


class StepPrinter:
    """The live progress of a playbook run: the current step on the spinner, one line per
    finished step on stderr (nothing under ``--json``)."""

    def __init__(self, reporter: Reporter, enabled: bool) -> None:
        self._reporter = reporter
        self._spinner = reporter if isinstance(reporter, SpinnerReporter) else None
        self._console = stderr_console() if enabled else None
        self._total = 0

    def started(self, step: Any, total: int) -> None:
        """Show ``[n/total] name`` as the current activity."""
        self._total = total
        self._reporter.step(f"[{step.number}/{total}] {step.name}")

    def finished(self, step: Any, result: Any) -> None:
        """Print the step's status and result."""
        if self._console is None:
            return
        with self.paused():
            self._console.print(
                f"[{step.number}/{self._total}] {_status_cell(result.status)} "
                f"{escape(step.name)} — {escape(result.detail)}",
                soft_wrap=True,
            )

    def paused(self) -> AbstractContextManager[None]:
        """Hide the spinner while the operator is asked something."""
        return self._spinner.paused() if self._spinner is not None else nullcontext()


@contextmanager
def progress(enabled: bool = True) -> Iterator[SpinnerReporter]:
    """A reporter for the duration of a command; silent unless stderr is a terminal."""
    console = stderr_console()
    # A real terminal, not Rich's is_terminal (which FORCE_COLOR turns on).
    if not (enabled and _isatty(sys.stderr)):
        yield SpinnerReporter(console, None)
        return
    with console.status("starting…") as status:
        yield SpinnerReporter(console, status)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def emit_json(document: dict[str, Any]) -> None:
    """Print one JSON document on stdout, uncoloured."""
    typer.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def document(report: Report, target: Mapping[str, object] | None = None) -> dict[str, Any]:
    """The one ``--json`` shape of every command: the same top-level keys, always present.

    ``status`` is the verdict or outcome, ``exit_code`` the process's exit code, ``findings``
    the checks or findings, ``steps`` what an action did, ``data`` command-specific results.
    ``checks`` is the same list as ``findings``, under the name R-O2 gives it.
    """
    findings = [
        {
            "name": c.name,
            "status": c.status.value,
            "summary": c.summary,
            "details": list(c.details),
            "metrics": {p.label: p.value for p in c.perf},
            "data": dict(c.data),
        }
        for c in report.findings
    ]
    return {
        "command": report.command,
        "run_id": report.run_id,
        "status": report.status,
        "ok": report.ok,
        "exit_code": report.exit_code,
        "summary": report.summary,
        "target": dict(target or {}),
        "findings": findings,
        "checks": findings,
        "plan": [vars(c) for c in report.plan],
        "steps": [
            {"name": s.name, "status": s.status.value, "detail": s.detail} for s in report.steps
        ],
        "tables": [
            {"title": t.title, "rows": [dict(zip(t.columns, r, strict=True)) for r in t.rows]}
            for t in report.tables
        ],
        "notices": list(report.notices),
        "data": dict(report.data),
    }


CHECK_COMMANDS = frozenset({"healthcheck", "audit", "certcheck"})
"""The checks, whose verdict is ``unknown`` when they could not check at all (exit 3)."""


def error_document(
    command: str, error: MlsgwError, code: int, run_id: str, target: Mapping[str, object] | None
) -> dict[str, Any]:
    """The :func:`document` shape for a command stopped before it produced a report: status
    ``unknown`` for a check that could not check (no credentials, bad arguments: exit 3, as
    with ``--nagios``), ``error`` for any other command."""
    unknown = command in CHECK_COMMANDS and code == 3
    return {
        "command": command,
        "run_id": run_id,
        "status": "unknown" if unknown else "error",
        "ok": False,
        "exit_code": code,
        "summary": str(error),
        "target": dict(target or {}),
        "findings": [],
        "checks": [],
        "plan": [],
        "steps": [],
        "tables": [],
        "notices": [],
        "data": {"error": str(error), "error_type": type(error).__name__},
    }


def passed_summary(report: CheckReport) -> str:
    """``all 6 checks passed``, or ``2 passed, 4 skipped`` when some were skipped."""
    passed = sum(1 for c in report.checks if c.status is Status.OK)
    skipped = sum(1 for c in report.checks if c.status is Status.SKIPPED)
    if skipped:
        return f"{passed} passed, {skipped} skipped"
    return f"all {passed} checks passed"


def nagios_line(report: CheckReport, name: str = "MLSGW") -> str:
    """``MLSGW CRITICAL - health: ... | 'label'=value;warn;crit ...`` (one line): the checks'
    perfdata, then the report's own."""
    verdict = report.verdict
    word = NAGIOS_WORD.get(verdict, "UNKNOWN")
    bad = [
        c for c in report.checks if c.status in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN)
    ]
    shown = bad or (list(report.checks) if len(report.checks) == 1 else [])
    text = "; ".join(f"{c.name}: {c.summary}" for c in shown) or passed_summary(report)
    text = text.replace("|", "/").replace("\n", " ")
    perfs = [*(p for c in report.checks for p in c.perf), *report.perf]
    perf = " ".join(p.nagios() for p in perfs)
    return f"{name} {word} - {text}" + (f" | {perf}" if perf else "")


def nagios_unknown(message: str, name: str = "MLSGW") -> str:
    """One Nagios plugin line with status UNKNOWN and no perfdata (the command could not
    check anything: bad arguments, no credentials)."""
    text = " ".join(message.replace("|", "/").split())
    return f"{name} UNKNOWN - {text}"


def _status_cell(status: Status) -> str:
    return f"[{STATUS_STYLE[status]}]{status.value.upper()}[/]"


def _style_of(report: Report) -> str:
    if isinstance(report, ActionReport):
        return OUTCOME_STYLE[report.outcome]
    if isinstance(report, CheckReport):
        return VERDICT_STYLE[report.verdict]
    return "bold"


def render_target(target: Target, console: Console) -> None:
    """Where the service's coordinates came from, and configuration warnings."""
    named = [
        f"{name} {escape(str(getattr(target, name)))} ({escape(target.source_of(name))})"
        for name in ("project", "region", "service")
        if getattr(target, name)
    ]
    if named:
        console.print("[dim]target: " + ", ".join(named) + "[/]")
    for warning in target.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


def render(report: Report, console: Console, target: Target | None = None) -> None:
    """The Rich report of any command: target, tables, findings, plan, steps, notices, verdict."""
    if target is not None:
        render_target(target, console)
    for t in report.tables:
        table = RichTable(title=t.title, title_justify="left")
        for column in t.columns:
            table.add_column(
                column, overflow="fold", no_wrap=column in NO_WRAP, min_width=MIN_WIDTH.get(column)
            )
        for row in t.rows:
            cells = (SHORTENED.get(c, str)(cell) for c, cell in zip(t.columns, row, strict=True))
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)
    if report.findings:
        title = getattr(report, "title", "") or f"mlsgw {report.command}"
        findings = RichTable(title=escape(title), title_justify="left", show_lines=False)
        findings.add_column("check")
        findings.add_column("status")
        findings.add_column("result", overflow="fold")
        for check in report.findings:
            findings.add_row(check.name, _status_cell(check.status), _result_cell(check))
        console.print(findings)
    if report.plan:
        render_plan(report.plan, console)
    for step in () if getattr(report, "steps_in_table", False) else report.steps:
        # One grid per step: a long detail wraps under its own text, and short lines are
        # not padded to the width of the longest.
        line = RichTable.grid(padding=(0, 1))
        line.add_column(no_wrap=True)
        line.add_column(overflow="fold")
        detail = f" — {escape(step.detail)}" if step.detail else ""
        line.add_row(f"  {_status_cell(step.status)}", f"{escape(step.name)}{detail}")
        console.print(line)
    for notice in report.notices:
        console.print(f"[cyan]{escape(notice)}[/]", soft_wrap=True)
    # The verdict stays one line, whatever its length: scripts and people grep for it.
    verdict = f"[{_style_of(report)}]{report.status.upper()}[/]"
    console.print(f"{verdict} — {escape(report.summary)}  (run {report.run_id})", soft_wrap=True)


def short_image(image: str) -> str:
    """An image name that fits a table cell and keeps what tells images apart: the last
    path segment with its tag, or the digest's first 12 hex digits
    (``europe-west1-docker.pkg.dev/p/r/mlsgw:1.4.2`` → ``…/mlsgw:1.4.2``)."""
    name, at, digest = image.partition("@")
    path, _, last = name.rpartition("/")
    short = f"…/{last}" if path else last
    if at:
        algorithm, _, value = digest.partition(":")
        short += f"@{algorithm}:{value[:12]}" if value else f"@{digest}"
    return short


SHORTENED = {"image": short_image}
"""Table columns shown shortened on a terminal (``--json`` keeps the full value)."""
NO_WRAP = {"revision"}
"""Table columns that are names to copy: never broken across lines."""
MIN_WIDTH = {"image": 14, "created": 10}
"""Columns that would be squeezed to illegibility on a narrow terminal."""


def render_plan(plan: tuple[Change, ...], console: Console) -> None:
    """The plan, grouped by resource: one line per field, wrapped to the terminal's width."""
    console.print("[bold]Plan[/]")
    by_resource: dict[str, list[Change]] = {}
    for change in plan:
        by_resource.setdefault(change.resource, []).append(change)
    for resource, changes in by_resource.items():
        console.print(f"  {escape(resource)}", overflow="fold")
        for change in changes:
            # A grid per line: the change wraps under its own start, not under the indent.
            line = RichTable.grid()
            line.add_column(no_wrap=True)
            line.add_column(overflow="fold")
            before = "" if change.before in ("-", "") else f"{escape(change.before)} → "
            line.add_row("    ", f"{escape(change.field)}: {before}[bold]{escape(change.after)}[/]")
            console.print(line)


def _result_cell(check: CheckResult) -> str:
    lines = [escape(check.summary)] + [f"[dim]  {escape(d)}[/]" for d in check.details]
    return "\n".join(lines)


def render_ledger(records: list[dict[str, Any]], path: str, console: Console) -> None:
    """The ledger as a table, oldest first."""
    table = RichTable(title=f"Ledger {escape(path)}", title_justify="left")
    for column in ("time", "command", "outcome", "summary", "principal", "run id"):
        table.add_column(column, overflow="fold")
    for record in records:
        result = record.get("result") or {}
        cells = (
            record.get("time"),
            record.get("command"),
            result.get("outcome"),
            result.get("summary"),
            record.get("principal"),
            record.get("run_id"),
        )
        table.add_row(*(escape(str(c or "")) for c in cells))
    console.print(table)


def fail(
    error: MlsgwError,
    code: int,
    *,
    command: str,
    as_json: bool,
    run_id: str,
    target: Mapping[str, object] | None = None,
    nagios: bool = False,
) -> NoReturn:
    """Report an error that stopped a command before it produced a report, and exit.

    With ``nagios`` the error is one UNKNOWN plugin line on stdout (Nagios shows stdout only).
    """
    if nagios:
        typer.echo(nagios_unknown(str(error)))
    elif as_json:
        emit_json(error_document(command, error, code, run_id, target))
    else:
        message = f"[bold red]mlsgw {command}:[/] {escape(str(error))}"
        stderr_console().print(message, soft_wrap=True)
    raise typer.Exit(code)
