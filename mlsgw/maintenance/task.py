"""What a maintenance task is, and how one is run so that its failure never stops the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlsgw.audit.runner import NO_CREDENTIALS
from mlsgw.checks import skipped
from mlsgw.errors import MlsgwError, NoCredentials, NoEndpointOverride, UsageError
from mlsgw.report import CheckResult, Status
from mlsgw.runbook.context import RunContext
from mlsgw.target import Target


def always(target: Target) -> bool:
    """For any target."""
    return True


def never(target: Target) -> bool:
    """For no target."""
    return False


def without_url(target: Target) -> bool:
    """When no ``--url`` is given (the relay's URL is then read from Cloud Run)."""
    return not target.url


@dataclass(frozen=True)
class Task:
    """One scheduled task: its name (``--task``), what it does, and the function doing it."""

    name: str
    title: str
    run: Callable[[RunContext], CheckResult]
    hour: int = 3
    """The UTC hour ``mlsgw schedule`` runs it at (weekly tasks are spread over 02-04)."""
    changes: bool = False
    """It changes something (a scratch database) and so needs confirmation."""
    cloud: Callable[[Target], bool] = always
    """Whether it calls Google Cloud for a target: the schedule looks up the credentials
    once, before the tasks, when one of them does."""


def run_task(ctx: RunContext, task: Task, credentials_reported: bool = False) -> CheckResult:
    """``task``'s result; an error becomes an UNKNOWN result saying why, never an exception.
    With ``credentials_reported`` (the schedule said once that there are no Google
    credentials) a task that needed them is SKIPPED, pointing at that line. A task needing
    an API that has no endpoint override while another API has one (Cloud Monitoring with
    only ``--endpoint``) is SKIPPED with the reason, as the healthcheck's checks are."""
    ctx.reporter.step(task.title)
    try:
        return task.run(ctx)
    except NoEndpointOverride as exc:
        return skipped(task.name, str(exc))
    except MlsgwError as exc:
        if credentials_reported and isinstance(exc, NoCredentials):
            return CheckResult(task.name, Status.SKIPPED, f"skipped: {NO_CREDENTIALS}")
        return CheckResult(task.name, Status.UNKNOWN, f"could not run: {exc}")
    except Exception as exc:  # a bug in one task must not hide the others' results
        return CheckResult(task.name, Status.UNKNOWN, f"failed: {type(exc).__name__}: {exc}")


def need(value: str | None, flag: str, what: str) -> str:
    """``value``, or :class:`UsageError` saying which flag gives it."""
    if not value:
        raise UsageError(f"{what} needs {flag}")
    return value


def percent(value: float | None) -> str:
    """``12.5 %`` or ``no data``."""
    return "no data" if value is None else f"{value * 100:.1f} %"
