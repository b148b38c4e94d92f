"""Running a playbook step by step (R-K11).

Each step is shown as it starts and ends, recorded in the ledger (``playbook step``), and the
run stops at the first failure with the step's ``on_failure`` advice; the run itself ends
with one ``playbook run`` line. ``--dry-run`` writes nothing: ``run`` steps whose command has
``--dry-run`` are run with it (the plan, validated, nothing changed), the others are listed
only; checks and questions are listed, not asked. ``--yes`` is passed to every command that
takes it, confirms checklist items (recorded as confirmed by ``--yes``) and answers questions
with their default.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from mlsgw.errors import LedgerError, Refused
from mlsgw.playbooks.invoke import Invocation
from mlsgw.playbooks.schema import Playbook, Step, StepKind
from mlsgw.report import ActionReport, Outcome, Status, Table
from mlsgw.report import Step as ReportStep
from mlsgw.runbook.context import RunContext

Invoke = Callable[[Sequence[str]], Invocation]


class Prompter(Protocol):
    """Questions to the operator; :class:`Refused` when nobody can answer (no terminal)."""

    def confirm(self, question: str) -> bool: ...

    def ask(self, question: str, default: str | None) -> str: ...


class Display(Protocol):
    """The live progress of a run (nothing under ``--json``)."""

    def started(self, step: Step, total: int) -> None: ...

    def finished(self, step: Step, result: StepResult) -> None: ...

    def paused(self) -> AbstractContextManager[None]:
        """While a question is asked or a command may prompt."""
        ...


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    status: Status
    detail: str
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    run_id: str | None = None
    """The run id of the command it ran (its own ledger line)."""
    refused: bool = False
    """Nothing could be done (no terminal, a refusal): the run ends with exit 3."""


@dataclass(frozen=True)
class RunOptions:
    """How to run: dry run, ``--yes``, answers given up front, flags for every command."""

    dry_run: bool = False
    yes: bool = False
    answers: Mapping[str, str] = field(default_factory=dict)
    forwarded: Mapping[str, str] = field(default_factory=dict)
    """Flag -> value given to ``playbook run`` (``--project``, ``--endpoint``, ...), added to
    every command that takes the flag and does not set it itself."""
    secret_flags: frozenset[str] = frozenset()
    """Options whose values never reach the ledger or the report (``--probe-key``, ...)."""


def command_argv(step: Step, answers: Mapping[str, str], options: RunOptions) -> tuple[str, ...]:
    """The arguments a ``run`` step is invoked with: placeholders filled, the forwarded
    target flags, ``--json`` (the report is read back), ``--yes`` and ``--dry-run`` as the
    run asks. :class:`KeyError` naming a placeholder that has no answer."""
    assert step.command is not None
    words = [word.format_map(answers) for word in shlex.split(step.text)[1:]]
    command = step.command
    present = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    for flag, value in options.forwarded.items():
        if command.takes(flag) and flag not in present:
            words += [flag, value]
    for flag, wanted in (("--json", True), ("--yes", options.yes), ("--dry-run", options.dry_run)):
        if wanted and command.takes(flag) and flag not in present:
            words.append(flag)
    return tuple(words)


def _run_step(
    step: Step, answers: dict[str, str], options: RunOptions, invoke: Invoke, display: Display
) -> StepResult:
    command = step.command
    assert command is not None
    if options.dry_run and not command.takes("--dry-run"):
        return StepResult(Status.SKIPPED, f"not run: `mlsgw {command.name}` has no --dry-run")
    try:
        argv = command_argv(step, answers, options)
    except KeyError as missing:
        return StepResult(Status.SKIPPED, f"not run: no answer for {{{missing.args[0]}}}")
    may_prompt = command.takes("--yes") and not options.yes and not options.dry_run
    if may_prompt:
        with display.paused():
            done = invoke(argv)
    else:
        done = invoke(argv)
    run_id = done.document.get("run_id")
    shown = redact(argv, options.secret_flags)
    step_run = str(run_id) if isinstance(run_id, str) else None
    if done.exit_code == 0:
        return StepResult(Status.OK, done.summary, shown, done.exit_code, step_run)
    status = Status.WARNING if step.continue_on_failure else Status.CRITICAL
    detail = f"exit {done.exit_code}: {done.summary}"
    refused = done.exit_code == 3 and not step.continue_on_failure
    return StepResult(status, detail, shown, done.exit_code, step_run, refused)


def redact(argv: Sequence[str], secret_flags: frozenset[str]) -> tuple[str, ...]:
    """``argv`` with the values of secret options replaced by ``***`` (for the ledger and
    the report; the command itself gets the real values)."""
    shown = list(argv)
    for index, word in enumerate(shown):
        flag, sep, _ = word.partition("=")
        if flag in secret_flags:
            if sep:
                shown[index] = f"{flag}=***"
            elif index + 1 < len(shown):
                shown[index + 1] = "***"
    return tuple(shown)


def _check_step(step: Step, options: RunOptions, prompt: Prompter, display: Display) -> StepResult:
    if options.dry_run:
        return StepResult(Status.SKIPPED, "checklist item: confirmed on a real run")
    if options.yes:
        return StepResult(Status.OK, "confirmed by --yes")
    try:
        with display.paused():
            confirmed = prompt.confirm(step.text)
    except Refused as exc:
        return StepResult(Status.CRITICAL, str(exc), refused=True)
    if confirmed:
        return StepResult(Status.OK, "confirmed")
    status = Status.WARNING if step.continue_on_failure else Status.CRITICAL
    return StepResult(status, "not confirmed")


def _ask_step(
    step: Step, answers: dict[str, str], options: RunOptions, prompt: Prompter, display: Display
) -> StepResult:
    assert step.answer_id is not None
    key = step.answer_id
    if key in options.answers:
        answers[key] = options.answers[key]
        return StepResult(Status.OK, f"{key} = {answers[key]} (--answer)")
    if options.dry_run or options.yes:
        if step.default is None:
            if options.dry_run:
                return StepResult(Status.SKIPPED, f"question: answered on a real run ({key})")
            return StepResult(
                Status.CRITICAL,
                f"{key} has no default: answer on a terminal or give --answer {key}=VALUE",
                refused=True,
            )
        answers[key] = step.default
        return StepResult(Status.OK, f"{key} = {step.default} (default)")
    try:
        with display.paused():
            answers[key] = prompt.ask(step.text, step.default)
    except Refused as exc:
        return StepResult(Status.CRITICAL, f"{exc}; or give --answer {key}=VALUE", refused=True)
    return StepResult(Status.OK, f"{key} = {answers[key]}")


def _record_step(ctx: RunContext, playbook: Playbook, step: Step, result: StepResult) -> None:
    outcome = {
        Status.OK: "done",
        Status.WARNING: "failed",
        Status.CRITICAL: "refused" if result.refused else "failed",
        Status.SKIPPED: "skipped",
    }.get(result.status, "failed")
    ctx.ledger.append(
        command="playbook step",
        run_id=ctx.run_id,
        args={
            "playbook": playbook.name,
            "step": step.number,
            "kind": step.kind.value,
            "text": step.text,
            "argv": list(result.argv),
        },
        plan=[],
        pre_state=None,
        result={
            "outcome": outcome,
            "summary": result.detail,
            "exit_code": result.exit_code,
            "step_run_id": result.run_id,
        },
    )


def _results(
    playbook: Playbook,
    options: RunOptions,
    invoke: Invoke,
    prompt: Prompter,
    display: Display,
    ctx: RunContext,
) -> Iterator[tuple[Step, StepResult]]:
    answers: dict[str, str] = dict(options.answers)
    total = len(playbook.steps)
    for step in playbook.steps:
        display.started(step, total)
        if step.kind is StepKind.NOTE:
            result = StepResult(Status.OK, step.text)
        elif step.kind is StepKind.CHECK:
            result = _check_step(step, options, prompt, display)
        elif step.kind is StepKind.ASK:
            result = _ask_step(step, answers, options, prompt, display)
        else:
            result = _run_step(step, answers, options, invoke, display)
        if not options.dry_run:
            _record_step(ctx, playbook, step, result)
        display.finished(step, result)
        yield step, result
        if result.status is Status.CRITICAL:
            return


def run_playbook(
    ctx: RunContext,
    playbook: Playbook,
    options: RunOptions,
    *,
    invoke: Invoke,
    prompt: Prompter,
    display: Display,
) -> ActionReport:
    """Run ``playbook``: every step shown, recorded and judged; stops at the first failure.

    Exit 0 when every step passed (a dry run: listed and validated), 1 when a step failed,
    3 when one was refused (no terminal for a question, a command refused) or the ledger
    cannot be written (checked before the first step).
    """
    command = "playbook run"
    if not options.dry_run:
        try:
            ctx.ledger.check_writable()
        except LedgerError as exc:
            return ActionReport(
                command, Outcome.REFUSED, f"the ledger cannot be written: {exc}", ctx.run_id
            )
    done: list[tuple[Step, StepResult]] = []
    try:
        for pair in _results(playbook, options, invoke, prompt, display, ctx):
            done.append(pair)
    except LedgerError as exc:
        return _report(ctx, playbook, options, done, f"the ledger could not be written: {exc}")
    return _report(ctx, playbook, options, done, None)


def _report(
    ctx: RunContext,
    playbook: Playbook,
    options: RunOptions,
    done: list[tuple[Step, StepResult]],
    ledger_problem: str | None,
) -> ActionReport:
    failed = next(((s, r) for s, r in done if r.status is Status.CRITICAL), None)
    ran = {s.number for s, _ in done}
    rows = [
        (str(s.number), s.kind.value, s.name, r.status.value.upper(), r.detail) for s, r in done
    ]
    rows += [
        (str(s.number), s.kind.value, s.name, "NOT RUN", "")
        for s in playbook.steps
        if s.number not in ran
    ]
    notices: list[str] = []
    warnings = [s.number for s, r in done if r.status is Status.WARNING]
    if failed is not None:
        step, result = failed
        outcome = Outcome.REFUSED if result.refused else Outcome.FAILED
        summary = f"stopped at step {step.number} ({step.name}): {result.detail}"
        advice = step.on_failure or "fix the cause, then run the playbook again"
        notices.append(f"What to do next: {advice}")
        rest = len(playbook.steps) - step.number
        if rest:
            notices.append(f"{rest} later step(s) were not run.")
    elif ledger_problem is not None:
        outcome, summary = Outcome.FAILED, ledger_problem
    elif options.dry_run:
        outcome = Outcome.PLANNED
        summary = f"dry run: {len(done)} step(s) listed; nothing was changed or recorded"
    else:
        outcome = Outcome.DONE
        summary = f"all {len(done)} step(s) passed"
        if warnings:
            summary += f" (diagnostic step(s) {warnings} reported problems)"
    report = ActionReport(
        "playbook run",
        outcome,
        f"{playbook.name}: {summary}",
        ctx.run_id,
        steps=tuple(ReportStep(f"{s.number}. {s.name}", r.status, r.detail) for s, r in done)
        + tuple(
            ReportStep(f"{s.number}. {s.name}", Status.SKIPPED, "not run")
            for s in playbook.steps
            if s.number not in ran
        ),
        steps_in_table=True,
        tables=(Table(playbook.title, ("#", "kind", "step", "status", "result"), tuple(rows)),),
        notices=tuple(notices),
        data={
            "playbook": playbook.name,
            "dry_run": options.dry_run,
            "steps": [
                {
                    "number": s.number,
                    "kind": s.kind.value,
                    "name": s.name,
                    "text": s.text,
                    "status": r.status.value,
                    "detail": r.detail,
                    "argv": list(r.argv),
                    "exit_code": r.exit_code,
                    "run_id": r.run_id,
                }
                for s, r in done
            ],
        },
    )
    if not options.dry_run and ledger_problem is None:
        try:
            ctx.ledger.append(
                command="playbook run",
                run_id=ctx.run_id,
                args={"playbook": playbook.name, "yes": options.yes},
                plan=[],
                pre_state=None,
                result={"outcome": outcome.value, "summary": report.summary},
            )
        except LedgerError as exc:
            return ActionReport(
                report.command,
                Outcome.FAILED,
                f"{report.summary}; NOT RECORDED in the ledger: {exc}",
                ctx.run_id,
                tables=report.tables,
                notices=report.notices,
                data=report.data,
            )
    return report
