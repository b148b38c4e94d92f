"""``mlsgw maintenance weekly|monthly|quarterly`` and ``mlsgw schedule`` (R-K10)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from mlsgw import output
from mlsgw.commands.common import (
    SERVICE_FIELDS,
    CommandOptions,
    RunbookCommand,
    fail_early,
    run_command,
    runbook_command,
)
from mlsgw.commands.usage import MlsgwGroup
from mlsgw.errors import UsageError
from mlsgw.maintenance.audit_tasks import security_audit
from mlsgw.maintenance.crontab import crontab, entries
from mlsgw.maintenance.restore_drill import restore_drill
from mlsgw.maintenance.schedules import SCHEDULES, run_schedule, select
from mlsgw.report import ActionReport, CheckResult, Outcome, new_run_id
from mlsgw.runbook.context import RunContext

app = typer.Typer(
    help="The runbook's scheduled maintenance tasks, one report per schedule.",
    no_args_is_help=True,
    cls=MlsgwGroup,
)

MAINTENANCE_FIELDS = (*SERVICE_FIELDS, "metrics_key")
DRILL_FIELDS = ("project", "service", "endpoint", "ledger", "timeout")
"""The quarterly drill needs only Firestore (and the ledger); the service names the report."""
TaskOpt = Annotated[
    list[str] | None,
    typer.Option("--task", help="Run only this task (repeatable); see the list above."),
]


def _run(
    schedule: str,
    only: list[str] | None,
    options: CommandOptions,
    runs: Mapping[str, Callable[[RunContext], CheckResult]] | None = None,
) -> None:
    """Run the schedule's selected tasks; ``runs`` replaces a task's function by name (to
    pass it the command's own options)."""
    command = f"maintenance {schedule}"
    try:
        tasks = select(schedule, only or [])
    except UsageError as exc:
        fail_early(command, exc, as_json=options.as_json)
    own = runs or {}
    tasks = tuple(replace(t, run=own[t.name]) if t.name in own else t for t in tasks)
    run_command(
        command,
        options,
        lambda ctx: run_schedule(ctx, schedule, tasks),
        needs_service=False,
        records=False,
    )


def _names(schedule: str) -> str:
    return ", ".join(t.name for t in SCHEDULES[schedule]) or "none yet"


@app.command("weekly", cls=RunbookCommand)
@runbook_command(MAINTENANCE_FIELDS)
def weekly(task: TaskOpt = None, *, options: CommandOptions) -> None:
    """Weekly tasks: dependency audit (pip-audit), performance review over 7 days (request
    rate, error rate, p95, memory), sweep counts from the relay's /metrics, images of the last
    revisions in Artifact Registry, log bucket retention.

    Exit codes: the worst task decides: 0 all ok, 1 a warning, 2 a critical finding, 3 a task
    could not run and none was critical (or a usage error).

    Example: mlsgw maintenance weekly --metrics-key $KEY
    """
    _run("weekly", task, options)


@app.command("monthly", cls=RunbookCommand)
@runbook_command(MAINTENANCE_FIELDS)
def monthly(task: TaskOpt = None, *, options: CommandOptions) -> None:
    """Monthly tasks: TLS certificate check, capacity review (instances and concurrency
    against their limits, CPU), base image vulnerabilities (Artifact Analysis), security audit.

    The security audit reviews what mlsgw audit does, including the relay config given by
    --config, else $MLSGW_CONFIG.

    Exit codes: the worst task decides: 0 all ok, 1 a warning, 2 a critical finding, 3 a task
    could not run and none was critical (or a usage error).

    Example: mlsgw maintenance monthly --json
    """
    _run(
        "monthly", task, options, {"security_audit": partial(security_audit, config=options.config)}
    )


@app.command("quarterly", cls=RunbookCommand)
@runbook_command(DRILL_FIELDS, action=True, health_checks=False)
def quarterly(
    task: TaskOpt = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="ID",
            help="Drill only backups of this Firestore database id (default: the newest "
            "backup of any database).",
        ),
    ] = None,
    *,
    options: CommandOptions,
) -> None:
    """Quarterly task: the restore drill (newest backup into a scratch database, then deleted).

    The newest managed backup is restored into a scratch database mlsgw-drill-YYYYMMDD-HHMM,
    its documents are counted against the backup's own count, the restore time is judged
    against the 2 h RTO and the backup's age against the RPO ([ops] rpo_hours, 24 h by
    default), and the scratch database is deleted, also when the restore or the count
    fails. Asks first (--yes for cron); --dry-run shows the plan and creates nothing; the
    drill is recorded in the ledger.

    Exit codes: the worst task decides: 0 ok (or dry run), 1 a warning (old backup), 2
    critical (no backup, counts differ, over the RTO, restore failed, scratch database left
    behind), 3 a task could not run (not confirmed, no terminal and no --yes, usage error).

    Example: mlsgw maintenance quarterly --project my-proj --dry-run
    """
    _run("quarterly", task, options, {"restore_drill": partial(restore_drill, database=database)})


def schedule(
    log_dir: Annotated[
        str, typer.Option(help="Directory the jobs append their output to.")
    ] = "/var/log/mlsgw",
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file the jobs pass on (made absolute)."),
    ] = None,
    mlsgw: Annotated[
        str | None,
        typer.Option(help="The mlsgw executable (default: the one on PATH, absolute)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Print ready-to-paste crontab lines: daily 09:00 UTC healthcheck, Sunday 02:00/03:00/
    04:00 weekly tasks, first-Sunday monthly tasks (and quarterly ones), output appended to
    --log-dir. Changes nothing.

    Exit codes: 0 printed, 3 usage error.

    Example: mlsgw schedule -c /etc/mlsgw/mlsgw.toml | crontab -
    """
    executable = mlsgw or shutil.which("mlsgw") or "mlsgw"
    lines = entries(
        SCHEDULES,
        mlsgw=executable,
        config=str(config.resolve()) if config else None,
        log_dir=log_dir,
    )
    if as_json:
        report = ActionReport(
            "schedule",
            Outcome.DONE,
            f"{len(lines)} crontab lines; nothing was changed",
            new_run_id(),
            data={"entries": [{**asdict(e), "line": e.line()} for e in lines]},
        )
        output.emit_json(output.document(report))
    else:
        typer.echo(crontab(lines), nl=False)
