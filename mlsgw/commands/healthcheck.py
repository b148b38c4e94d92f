"""``mlsgw healthcheck``: the morning check (R-K1), its checks run concurrently."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from mlsgw.checks import CHECKS, CheckContext
from mlsgw.commands.common import CommandOptions, run_command, runbook_command
from mlsgw.errors import MlsgwError
from mlsgw.probes import parse_secret_key
from mlsgw.report import CheckReport, CheckResult, Status
from mlsgw.runbook.context import RunContext
from mlsgw.target import Target

GRACE = 1.0
"""Seconds a check may overrun its timeout before it is reported as timed out."""


def run(run_ctx: RunContext) -> CheckReport:
    """Run every check concurrently, each bounded by ``target.timeout``."""
    target, reporter = run_ctx.target, run_ctx.reporter
    ctx = CheckContext(target, run_ctx.cloud)
    results: dict[int, CheckResult] = {}
    done = threading.Condition()

    def work(index: int) -> None:
        check, _ = CHECKS[index]
        try:
            result = check(ctx)
        except MlsgwError as exc:
            result = CheckResult(check.__name__.removeprefix("check_"), Status.UNKNOWN, str(exc))
        except Exception as exc:  # a bug in one check must not hide the others
            result = CheckResult(
                check.__name__.removeprefix("check_"),
                Status.UNKNOWN,
                f"check failed: {type(exc).__name__}: {exc}",
            )
        with done:
            results[index] = result
            done.notify_all()

    # Daemon threads: a call stuck past its own timeout must not keep the process alive.
    for index in range(len(CHECKS)):
        threading.Thread(target=work, args=(index,), daemon=True).start()
    reporter.step(f"running {len(CHECKS)} checks")
    deadline = time.monotonic() + target.timeout + GRACE
    with done:
        while len(results) < len(CHECKS):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not done.wait(remaining):
                break
        final = dict(results)
    checks = []
    for index, (check, on_timeout) in enumerate(CHECKS):
        name = check.__name__.removeprefix("check_")
        checks.append(
            final.get(index)
            or CheckResult(name, on_timeout, f"timed out after {target.timeout:g} s")
        )
    where = target.service or target.url or "relay"
    return CheckReport(
        "healthcheck", tuple(checks), run_ctx.run_id, title=f"mlsgw healthcheck — {where}"
    )


HEALTHCHECK_FIELDS = (
    "url",
    "project",
    "region",
    "service",
    "endpoint",
    "monitoring_endpoint",
    "probe_key",
    "metrics_key",
    "timeout",
    "backup_bucket",
)


def _check_probe_key(target: Target) -> None:
    if target.probe_key:
        parse_secret_key(target.probe_key)


@runbook_command(HEALTHCHECK_FIELDS)
def healthcheck(
    nagios: Annotated[
        bool, typer.Option("--nagios", help="Print one Nagios plugin line with perfdata.")
    ] = False,
    *,
    options: CommandOptions,
) -> None:
    """Morning health check: service Ready and traffic, /health, WebSocket, error logs,
    Firestore operations, key metrics, backup age against the RPO. Exit 0 green, 1 yellow,
    2 red, 3 unknown.

    Checks whose inputs are not configured are skipped, so this works against a local relay:

        mlsgw healthcheck --url http://127.0.0.1:8080

    Example: mlsgw healthcheck --project my-proj --region europe-west1 --service mlsgw
    """
    run_command(
        "healthcheck",
        options,
        run,
        needs_service=False,
        records=False,
        nagios=nagios,
        prepare=_check_probe_key,
    )
