"""What runbook commands return: plain frozen data, rendered by :mod:`mlsgw.output`.

Checks (``healthcheck``) return a :class:`CheckReport` whose verdict maps to the Nagios exit
codes; actions (``rollback``, ``deploy``, ...) return an :class:`ActionReport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Status(StrEnum):
    """The result of one check (R-O3)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Perf:
    """One Nagios performance datum: ``'label'=value[unit];warn;crit``."""

    label: str
    value: float
    unit: str = ""
    warn: float | None = None
    crit: float | None = None

    def nagios(self) -> str:
        """The perfdata token."""

        def num(v: float | None) -> str:
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

    @property
    def verdict(self) -> Verdict:
        """Red on any CRITICAL, unknown on any UNKNOWN, yellow on any WARNING, else green."""
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

    @property
    def exit_code(self) -> int:
        """0 done or planned (dry run), 1 failed, 3 refused."""
        return OUTCOME_EXIT[self.outcome]


class Reporter(Protocol):
    """Progress while a command runs (a spinner on a TTY, nothing otherwise)."""

    def step(self, message: str) -> None: ...
