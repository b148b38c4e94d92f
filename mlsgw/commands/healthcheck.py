"""``mlsgw healthcheck``: the morning check, its checks run concurrently within one bound."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from mlsgw.checks import CHECKS, CheckContext
from mlsgw.commands.common import (
    PANEL_OUTPUT,
    CommandOptions,
    check_probe_key,
    fail_early,
    refuse_two_formats,
    run_command,
    runbook_command,
)
from mlsgw.errors import MlsgwError, UsageError
from mlsgw.report import CheckReport, CheckResult, Status
from mlsgw.runbook.context import RunContext

GRACE = 1.0
"""Seconds a check may overrun its timeout before it is reported as timed out."""


def run(run_ctx: RunContext) -> CheckReport:
    """Run every check concurrently; the whole run ends within ``target.timeout`` + GRACE.

    Credentials are looked up once, before the checks and within the same bound; when there
    are none the command stops there (:class:`~mlsgw.errors.NoCredentials`, exit 3) instead
    of every cloud check failing on its own.
    """
    target, reporter = run_ctx.target, run_ctx.reporter
    started = time.monotonic()
    run_ctx.look_up_credentials()
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
    deadline = started + target.timeout + GRACE
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


@runbook_command(HEALTHCHECK_FIELDS)
def healthcheck(
    nagios: Annotated[
        bool,
        typer.Option(
            "--nagios",
            help="Print one Nagios plugin line with perfdata.",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = False,
    *,
    options: CommandOptions,
) -> None:
    """Morning health check: service, /health, WebSocket, logs, Firestore, metrics, backups.

    The checks run concurrently; the whole check ends within --timeout (plus a second).
    Checks whose inputs are not configured are skipped, so this also checks a local relay:
    mlsgw healthcheck --url http://127.0.0.1:8080

    Exit codes: 0 green (every check passed or was skipped), 1 yellow (a warning), 2 red
    (the service is down), 3 unknown (a check could not be done, no credentials, a usage
    error). With --nagios every outcome, usage errors included, is one plugin line on stdout.

    Example: mlsgw healthcheck --project my-proj --region europe-west1 --service mlsgw
    """
    try:
        refuse_two_formats(options.as_json, nagios)
    except UsageError as exc:
        fail_early("healthcheck", exc, as_json=False, nagios=True)
    run_command(
        "healthcheck",
        options,
        run,
        needs_service=False,
        records=False,
        nagios=nagios,
        prepare=check_probe_key,
    )
