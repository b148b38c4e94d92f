"""How every runbook action runs, whatever it changes (R-O4, R-O5).

plan (read each resource, compute its change) → check the ledger can be written →
validate (``--dry-run``: server-side where the API can, then stop) → confirm → apply in order,
each write guarded by what was read, re-read and recomputed on a concurrent change →
verify → record one ledger line. A resource that already looks as wanted is not written:
run twice, the second run changes nothing and says so.

Commands only build an :class:`Action` (what to change and how to verify it); confirmation,
dry run, conflicts, partial failures and the ledger are handled here, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsgw.errors import (
    Conflict,
    LedgerError,
    MlsgwError,
    NoCredentials,
    NotFound,
    PermissionDenied,
    Refused,
    UsageError,
)
from mlsgw.report import ActionReport, Change, Outcome, Status, Step, Table
from mlsgw.resources.base import ChangeT, Mutation, StateT
from mlsgw.runbook.context import RunContext

WRITE_ATTEMPTS = 5
"""Reads and writes of one resource before giving up on concurrent changes."""


@dataclass
class Trail:
    """What happened so far (steps appended as they happen), shared with the hooks."""

    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    """Resource key -> its state as read when the action was planned."""
    after: dict[str, Any] = field(default_factory=dict)
    """Resource key -> its state after the write (or as read when nothing was written)."""


Verify = Callable[[RunContext, Trail], tuple[Outcome, str]]
OnFailure = Callable[[RunContext, Trail, MlsgwError], str]
Finish = Callable[[RunContext, Trail], str | None]


@dataclass(frozen=True)
class Action:
    """One action: what to change, the question to confirm it, how to verify it."""

    command: str
    args: Mapping[str, object]
    mutations: tuple[Mutation[Any, Any], ...]
    question: str
    plan: tuple[Change, ...] | None = None
    """The plan shown; by default the mutations' own plan lines."""
    tables: tuple[Table, ...] = ()
    steps: tuple[Step, ...] = ()
    """Steps already done while planning (e.g. choosing a target)."""
    notices: tuple[str, ...] = ()
    unchanged: str = "nothing to change: everything already looks as wanted"
    """The summary when no resource needs a change."""
    verify: Verify | None = None
    """After every change is applied: the outcome and summary (default: done)."""
    on_failure: OnFailure | None = None
    """After a change failed: the summary (may act, e.g. roll back, and add steps)."""
    finish: Finish | None = None
    """After the changes (or when none was needed), before verify and the ledger line; not
    on a dry run or a refusal. Returns why it failed (the action then fails), or ``None``.
    Local work belongs here, e.g. writing an evidence directory."""
    finish_label: str = "finish"
    """The step's name in the report when ``finish`` raises."""
    done: str = "done"
    pre_state: Mapping[str, object] | None = None
    """Extra pre-state for the ledger (beside each resource's own summary)."""


@dataclass
class _Planned:
    mutation: Mutation[Any, Any]
    state: Any
    change: Any


def refusal_code(exc: MlsgwError) -> Outcome:
    """Errors before anything changed: preconditions are refusals (3), the rest failures (1)."""
    precondition = (Refused, UsageError, NoCredentials, PermissionDenied, NotFound, LedgerError)
    return Outcome.REFUSED if isinstance(exc, precondition) else Outcome.FAILED


def record(
    ctx: RunContext,
    report: ActionReport,
    args: Mapping[str, object],
    pre_state: object,
    result: Mapping[str, Any],
) -> None:
    """Append the action's ledger line (never for dry runs)."""
    if report.outcome is Outcome.PLANNED:
        return
    where = {"service_name": ctx.target.service_name} if ctx.target.has_service else {}
    ctx.ledger.append(
        command=report.command,
        run_id=report.run_id,
        args={**where, **args},
        plan=[vars(c) for c in report.plan],
        pre_state=pre_state,
        result={"outcome": report.outcome.value, "summary": report.summary, **result},
    )


def refuse(
    ctx: RunContext,
    command: str,
    reason: str,
    *,
    args: Mapping[str, object],
    pre_state: object = None,
    tables: tuple[Table, ...] = (),
) -> ActionReport:
    """A refusal before anything changed (exit 3), with its ledger line when it can be written."""
    done = ActionReport(command, Outcome.REFUSED, reason, ctx.run_id, tables=tables)
    try:
        record(ctx, done, args, pre_state, {})
    except LedgerError as exc:
        return ActionReport(
            command, Outcome.REFUSED, f"{reason} (not recorded: {exc})", ctx.run_id, tables=tables
        )
    return done


def write(
    ctx: RunContext, mutation: Mutation[StateT, ChangeT], state: StateT, change: ChangeT
) -> tuple[StateT, int]:
    """Apply ``change`` guarded by ``state``; on a conflict read again and recompute.

    Returns the state afterwards and how many concurrent changes were retried (when the
    recomputed change is ``None``, the resource already looks as wanted and is not written).
    """
    resource = mutation.resource
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return resource.apply(state, change), attempt - 1
        except Conflict:
            ctx.reporter.step(f"the {resource.kind} changed concurrently; reading it again")
        state = resource.read()
        recomputed = mutation.compute(state)
        if recomputed is None:
            return state, attempt
        change = recomputed
    raise Conflict(
        f"{resource.name} kept changing concurrently ({WRITE_ATTEMPTS} attempts); "
        "retry when the other change is done"
    )


def _key(mutation: Mutation[Any, Any]) -> str:
    return mutation.resource.key


def as_ours(exc: Exception) -> MlsgwError:
    """``exc`` itself when it is ours, else an error naming its type and message (for an
    exception nothing translated, e.g. a bug, so that it is reported and recorded)."""
    if isinstance(exc, MlsgwError):
        return exc
    return MlsgwError(f"{type(exc).__name__}: {exc}")


def _crashed(trail: Trail, name: str, exc: Exception) -> str:
    """Note a hook that raised after the changes: its step, the error in the ledger line."""
    error = as_ours(exc)
    trail.steps.append(Step(name, Status.CRITICAL, str(error)))
    trail.result["error"] = str(error)
    return f"{name} failed: {error}"


def execute(ctx: RunContext, action: Action) -> ActionReport:
    """Plan, validate (dry run stops here), confirm, apply, verify, record: the report.

    Guarantees: nothing is written before the ledger is known to be writable and the change
    is confirmed; a dry run writes nothing, not even the ledger; a failed change stops the
    action, and the report lists which changes ran and which did not. Once a change may have
    been written, any exception (a failed write, or ``finish`` or ``verify`` raising) becomes a
    failed report whose ledger line keeps the pre-state, what was applied and the error, so
    the change can still be undone.
    """
    trail = Trail(steps=list(action.steps), notices=list(action.notices))
    planned: list[_Planned] = []
    for mutation in action.mutations:
        ctx.reporter.step(f"reading the {mutation.resource.kind}")
        state = mutation.resource.read()
        planned.append(_Planned(mutation, state, mutation.compute(state)))
    trail.before.update({_key(p.mutation): p.state for p in planned})
    pre_state: dict[str, object] = {
        _key(p.mutation): p.mutation.resource.summary(p.state) for p in planned
    }
    pre_state.update(action.pre_state or {})
    plan = action.plan
    if plan is None:
        plan = tuple(
            line
            for p in planned
            if p.change is not None
            for line in p.mutation.describe(p.state, p.change)
        )

    def report(outcome: Outcome, summary: str, *, recorded: bool = True) -> ActionReport:
        done = ActionReport(
            command=action.command,
            outcome=outcome,
            summary=summary,
            run_id=ctx.run_id,
            plan=plan,
            steps=tuple(trail.steps),
            tables=action.tables,
            notices=tuple(trail.notices),
            data={"result": trail.result},
        )
        if recorded and not ctx.dry_run:  # a dry run writes nothing, even when unchanged
            try:
                record(ctx, done, action.args, pre_state, trail.result)
            except LedgerError as exc:  # checked writable before, so this is rare: say it
                unrecorded = f"{summary}; NOT RECORDED in the ledger: {exc}"
                failed = Outcome.FAILED if outcome is Outcome.DONE else outcome
                return dataclasses.replace(done, outcome=failed, summary=unrecorded)
        return done

    if not ctx.dry_run:
        try:
            ctx.ledger.check_writable()
        except LedgerError as exc:
            trail.steps.append(Step("ledger", Status.CRITICAL, str(exc)))
            return report(
                Outcome.REFUSED,
                f"the ledger cannot be written, so nothing was changed: {exc}",
                recorded=False,
            )
    pending = [p for p in planned if p.change is not None]
    if not pending:
        for p in planned:
            trail.after[_key(p.mutation)] = p.state
        trail.steps.append(Step("compare", Status.OK, "already as wanted; nothing written"))
        if ctx.dry_run:  # a dry run writes nothing, not even the ledger
            return report(Outcome.DONE, action.unchanged, recorded=False)
        if failed := _finish(ctx, action, trail):
            return report(Outcome.FAILED, f"{action.unchanged}, but {failed}")
        return report(Outcome.DONE, action.unchanged)
    if ctx.dry_run:
        # A real run needs no separate validation: each write is validated by the API as
        # it is applied, guarded by what was read (a validation would race the etag).
        for p in pending:
            ctx.reporter.step(f"validating: {p.mutation.label}")
            how = p.mutation.resource.validate(p.state, p.change)
            trail.steps.append(Step(f"validate {p.mutation.label}", Status.OK, how))
        return report(Outcome.PLANNED, "dry run: the plan above was validated; nothing was changed")
    try:
        ctx.confirm(action.question)
    except Refused as exc:
        trail.steps.append(Step("confirm", Status.SKIPPED, str(exc)))
        return report(Outcome.REFUSED, str(exc))
    for p in planned:
        if p.change is None:
            trail.after[_key(p.mutation)] = p.state
    for index, p in enumerate(pending):
        label = p.mutation.label
        ctx.reporter.step(label)
        try:
            after, conflicts = write(ctx, p.mutation, p.state, p.change)
        except Exception as raised:
            error = as_ours(raised)
            trail.steps.append(Step(label, Status.CRITICAL, str(error)))
            for rest in pending[index + 1 :]:
                trail.steps.append(Step(rest.mutation.label, Status.SKIPPED, "not run"))
            trail.result["error"] = str(error)
            if index:  # what the earlier changes left, for an undo
                trail.result["post_state"] = _post_state(planned, trail)
            if action.on_failure is not None:
                return report(Outcome.FAILED, action.on_failure(ctx, trail, error))
            ran = f"{index} of {len(pending)} change(s) applied before it"
            return report(Outcome.FAILED, f"{label} failed: {error} ({ran})")
        trail.after[_key(p.mutation)] = after
        detail = p.mutation.applied(after) if p.mutation.applied else "applied"
        if conflicts:
            detail += f", {conflicts} concurrent change(s) re-read and retried"
        trail.steps.append(Step(label, Status.OK, detail))
    trail.result["post_state"] = _post_state(planned, trail)
    if failed := _finish(ctx, action, trail):
        return report(Outcome.FAILED, f"every change is applied, but {failed}")
    if action.verify is not None:
        try:
            outcome, summary = action.verify(ctx, trail)
        except Exception as exc:
            failed = _crashed(trail, "verify", exc)
            return report(Outcome.FAILED, f"every change is applied, but {failed}")
        return report(outcome, summary)
    return report(Outcome.DONE, action.done)


def _post_state(planned: list[_Planned], trail: Trail) -> dict[str, object]:
    """Each resource's summary as written (or as read, when it was not), keyed."""
    return {
        _key(p.mutation): p.mutation.resource.summary(trail.after[_key(p.mutation)])
        for p in planned
        if _key(p.mutation) in trail.after
    }


def _finish(ctx: RunContext, action: Action, trail: Trail) -> str | None:
    """Run ``action.finish``: why it failed (also when it raised), or ``None``."""
    if action.finish is None:
        return None
    try:
        return action.finish(ctx, trail)
    except Exception as exc:
        return _crashed(trail, action.finish_label, exc)
