"""What runbook commands return: plain frozen data, rendered by :mod:`mlsgw.output`.

Every command's ``run(ctx)`` returns a :class:`Report`: checks and findings (``healthcheck``,
``ledger verify``) return a :class:`CheckReport` whose verdict maps to the Nagios exit codes;
actions (``rollback``, ``deploy``, ``lockdown``, ...) return an :class:`ActionReport`. Both
have the same shape (status, exit code, summary, findings, plan, steps, tables, notices,
data), so ``--json`` is one document shape for every command.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol


def new_run_id() -> str:
    """A sortable, unique run id: ``20261129T071500Z-1a2b3c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class Status(StrEnum):
    """The result of one check (R-O3)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    INFO = "info"
    """Worth knowing, not a problem: leaves the verdict alone (audit findings)."""
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Perf:
    """One Nagios performance datum: ``'label'=value[unit];warn;crit``.

    A threshold is a number (alert above it) or a Nagios range written out, e.g. ``"21:"``
    (alert below 21); ``unit`` is one of the plugin guidelines' units, or empty."""

    label: str
    value: float
    unit: str = ""
    warn: float | str | None = None
    crit: float | str | None = None

    def nagios(self) -> str:
        """The perfdata token; thresholds left out from the end when not given."""

        def num(v: float | str | None) -> str:
            if isinstance(v, str):
                return v
            return "" if v is None else f"{v:g}"

        text = f"'{self.label}'={self.value:g}{self.unit};{num(self.warn)};{num(self.crit)}"
        return text.rstrip(";")


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome."""

    name: str
    status: Status
    summary: str
    details: tuple[str, ...] = ()
    perf: tuple[Perf, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)


class Verdict(StrEnum):
    """The morning check's overall verdict."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    UNKNOWN = "unknown"


VERDICT_EXIT = {Verdict.GREEN: 0, Verdict.YELLOW: 1, Verdict.RED: 2, Verdict.UNKNOWN: 3}
NAGIOS_WORD = {Verdict.GREEN: "OK", Verdict.YELLOW: "WARNING", Verdict.RED: "CRITICAL"}


@dataclass(frozen=True)
class CheckReport:
    """A set of checks and the verdict they add up to."""

    command: str
    checks: tuple[CheckResult, ...]
    run_id: str
    title: str = ""
    tables: tuple[Table, ...] = ()
    notices: tuple[str, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)
    verdict_override: Verdict | None = None
    """A verdict decided outside the checks (e.g. a ledger that does not exist)."""
    summary_override: str | None = None
    status_label: str | None = None
    """A more precise name for the verdict (``intact``, ``missing``)."""
    plan: tuple[Change, ...] = ()
    steps: tuple[Step, ...] = ()
    perf: tuple[Perf, ...] = ()
    """Perfdata of the report as a whole (the audit's counts), after the checks' own."""

    @property
    def findings(self) -> tuple[CheckResult, ...]:
        """The checks, as findings of the common report shape."""
        return self.checks

    @property
    def status(self) -> str:
        """The verdict's name: green, yellow, red, unknown (or :attr:`status_label`)."""
        return self.status_label or self.verdict.value

    @property
    def ok(self) -> bool:
        """Green."""
        return self.verdict is Verdict.GREEN

    @property
    def summary(self) -> str:
        """``5 ok, 1 warning`` (or the explicit summary)."""
        if self.summary_override is not None:
            return self.summary_override
        parts = []
        for status in Status:
            n = sum(1 for c in self.checks if c.status is status)
            if n:
                parts.append(f"{n} {status.value}")
        return ", ".join(parts) or "nothing to check"

    @property
    def verdict(self) -> Verdict:
        """Red on any CRITICAL, unknown on any UNKNOWN, yellow on any WARNING, else green."""
        if self.verdict_override is not None:
            return self.verdict_override
        statuses = {c.status for c in self.checks}
        if Status.CRITICAL in statuses:
            return Verdict.RED
        if Status.UNKNOWN in statuses:
            return Verdict.UNKNOWN
        if Status.WARNING in statuses:
            return Verdict.YELLOW
        return Verdict.GREEN

    @property
    def exit_code(self) -> int:
        """0 green, 1 yellow, 2 red, 3 unknown."""
        return VERDICT_EXIT[self.verdict]


class Outcome(StrEnum):
    """How an action ended (R-O3: 0 done, 1 failed, 3 refused)."""

    DONE = "done"
    PLANNED = "planned"
    FAILED = "failed"
    REFUSED = "refused"


OUTCOME_EXIT = {Outcome.DONE: 0, Outcome.PLANNED: 0, Outcome.FAILED: 1, Outcome.REFUSED: 3}


@dataclass(frozen=True)
class Step:
    """One step of an action as it happened."""

    name: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Change:
    """One line of a plan: resource, field, before -> after."""

    resource: str
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Table:
    """A table for the report (e.g. revisions)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ActionReport:
    """What an action planned, did and concluded."""

    command: str
    outcome: Outcome
    summary: str
    run_id: str
    plan: tuple[Change, ...] = ()
    steps: tuple[Step, ...] = ()
    tables: tuple[Table, ...] = ()
    notices: tuple[str, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)
    findings: tuple[CheckResult, ...] = ()
    steps_in_table: bool = False
    """The steps are also one of :attr:`tables`: the human view does not list them twice."""

    @property
    def status(self) -> str:
        """The outcome's name: done, planned, failed, refused."""
        return self.outcome.value

    @property
    def ok(self) -> bool:
        """Done, or planned by a dry run."""
        return self.outcome in (Outcome.DONE, Outcome.PLANNED)

    @property
    def exit_code(self) -> int:
        """0 done or planned (dry run), 1 failed, 3 refused."""
        return OUTCOME_EXIT[self.outcome]


class Report(Protocol):
    """What every command's ``run(ctx)`` returns; ``--json`` renders exactly these keys."""

    @property
    def command(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def status(self) -> str:
        """The verdict (green/yellow/red/unknown) or outcome (done/planned/failed/refused)."""
        ...

    @property
    def ok(self) -> bool: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def summary(self) -> str: ...
    @property
    def findings(self) -> tuple[CheckResult, ...]: ...
    @property
    def plan(self) -> tuple[Change, ...]: ...
    @property
    def steps(self) -> tuple[Step, ...]: ...
    @property
    def tables(self) -> tuple[Table, ...]: ...
    @property
    def notices(self) -> tuple[str, ...]: ...
    @property
    def data(self) -> Mapping[str, object]: ...


class Reporter(Protocol):
    """Progress while a command runs (a spinner on a TTY, nothing otherwise)."""

    def step(self, message: str) -> None: ...
