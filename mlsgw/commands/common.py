"""What every runbook command shares: its options (:class:`CommandOptions`, declared once
from ``[ops]`` by :func:`runbook_command`), run ids, confirmation, and :func:`run_command`,
which builds the :class:`~mlsgw.runbook.RunContext`, runs ``run(ctx) -> Report`` and renders
it (a table, ``--json`` or ``--nagios``) with its exit code."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args, get_type_hints

import typer

from mlsgw import output
from mlsgw.commands.usage import MlsgwCommand
from mlsgw.errors import LedgerError, MlsgwError, Refused, UsageError
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.probes import parse_secret_key
from mlsgw.report import ActionReport, CheckReport, Report, new_run_id
from mlsgw.runbook.context import RunContext
from mlsgw.runbook.engine import record, refusal_code
from mlsgw.target import ENV_NAMES, OPS_FIELDS, Target, flag_name, resolve_target
from relay.settings import OPS_BOUNDS, OpsSettings

PANEL_TARGET = "Target"
PANEL_OUTPUT = "Output"
PANEL_SAFETY = "Safety"
PANEL_LEDGER = "Ledger"
PANEL_CHECKS = "Checks"


RunbookCommand = MlsgwCommand
"""The class of every runbook command (usage errors exit 3; see :mod:`.usage`)."""


def fail_early(command: str, error: MlsgwError, *, as_json: bool, nagios: bool = False) -> NoReturn:
    """Exit 3 before the command ran (bad arguments, unusable target or ledger)."""
    output.fail(error, 3, command=command, as_json=as_json, run_id=new_run_id(), nagios=nagios)


def refuse_two_formats(as_json: bool, nagios: bool) -> None:
    """``--json`` and ``--nagios`` together are a usage error, not silently resolved."""
    if as_json and nagios:
        raise UsageError("--json and --nagios are two output formats: give one of them")


def stdin_is_tty() -> bool:
    """Whether a person can answer a question."""
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def confirm(question: str, *, yes: bool) -> None:
    """Proceed with ``--yes`` or an answer on a TTY; :class:`Refused` without a TTY."""
    if yes:
        return
    if not stdin_is_tty():
        raise Refused("no terminal to confirm on and no --yes: nothing was changed")
    if not typer.confirm(question, default=False, err=True):
        raise Refused("not confirmed: nothing was changed")


# ---- target options, declared once from [ops] -------------------------------------------

FIELD_HELP: dict[str, str] = {
    "project": "Google Cloud project.",
    "region": "Cloud Run region.",
    "service": "Cloud Run service.",
    "url": "Public URL of the relay (default: the service's URL).",
    "endpoint": "Base URL for the REST Google APIs, anonymous (tests, stand-ins).",
    "monitoring_endpoint": "HOST:PORT of a plaintext gRPC Cloud Monitoring endpoint, anonymous.",
    "probe_key": "Secret key (hex or nsec) for a NIP-42 AUTH probe.",
    "metrics_key": "Key for the relay's /metrics when Cloud Monitoring is not used.",
    "ledger": "Ledger file or gs://BUCKET/OBJECT (default ~/.local/state/mlsgw/ledger.jsonl).",
    "backup_bucket": "Bucket for backups (default: <project>-backups).",
    "trusted_domains": "Domains whose IAM members are expected (comma-separated).",
    "timeout": "Seconds per call or check.",
    "incident_webhook": "Slack or Google Chat incoming-webhook URL the notice is POSTed to.",
    "contacts": "Escalation contacts ('sev1: who', 'sev1/sev2: who', or 'who' for all).",
}
"""Help of each ``[ops]`` field; the env variable and ``[ops]`` key are appended."""
FIELD_PANEL: dict[str, str | None] = {
    "ledger": PANEL_LEDGER,
    "timeout": None,
    "probe_key": PANEL_CHECKS,
    "metrics_key": PANEL_CHECKS,
    "backup_bucket": None,
}
FALLBACK_HELP = {
    "project": "CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT, gcloud core/project",
    "region": "CLOUDSDK_RUN_REGION, gcloud run/region",
}

MAX_LOG_HOURS = 24.0 * 90
"""Hours of logs a command reads at most (90 days): lockdown's evidence, audit's analysis."""

SERVICE_FIELDS = (
    "project",
    "region",
    "service",
    "url",
    "endpoint",
    "monitoring_endpoint",
    "ledger",
    "timeout",
)
"""The target fields of every command that changes a Cloud Run service."""


def with_endpoint_pair(fields_: tuple[str, ...]) -> tuple[str, ...]:
    """``fields_``, with ``monitoring_endpoint`` right after ``endpoint`` when only that one is
    there: a command taking ``--endpoint`` always takes ``--monitoring-endpoint`` too."""
    if "endpoint" not in fields_ or "monitoring_endpoint" in fields_:
        return fields_
    at = fields_.index("endpoint") + 1
    return (*fields_[:at], "monitoring_endpoint", *fields_[at:])


def _target_parameter(name: str) -> inspect.Parameter:
    hint = get_type_hints(OpsSettings)[name]
    base = next((a for a in get_args(hint) if a is not type(None)), hint)
    annotation: Any = float | None if base in (int, float) else str | None
    extra = f"; then {FALLBACK_HELP[name]}" if name in FALLBACK_HELP else ""
    text = FIELD_HELP.get(name, name.replace("_", " ").capitalize() + ".")
    if name in OPS_BOUNDS:
        least, most = OPS_BOUNDS[name]
        text = f"{text.removesuffix('.')}, {least:g} to {most:g}."
    help_text = f"{text} (env {ENV_NAMES[name]}; \\[ops] {name}{extra})"
    option = typer.Option(
        flag_name(name),
        help=help_text,
        rich_help_panel=FIELD_PANEL.get(name, PANEL_TARGET),
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[annotation, option]
    )


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file whose \\[ops] gives defaults (only \\[ops] is read) "
        "(default: $MLSGW_CONFIG or config/mlsgw.toml).",
        rich_help_panel=PANEL_TARGET,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document instead of the report.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
NagiosOpt = Annotated[
    bool,
    typer.Option(
        "--nagios",
        help="Print one Nagios plugin line with perfdata.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan (validated by the API) and change nothing.",
        rich_help_panel=PANEL_SAFETY,
    ),
]
YesOpt = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation.", rich_help_panel=PANEL_SAFETY),
]
HealthIntervalOpt = Annotated[
    float,
    typer.Option(
        help="Seconds between the 3 /health checks after a change.",
        min=0.0,
    ),
]
_COMMON: dict[str, tuple[Any, object]] = {
    "config": (ConfigOpt, None),
    "dry_run": (DryRunOpt, False),
    "yes": (YesOpt, False),
    "health_interval": (HealthIntervalOpt, 10.0),
    "as_json": (JsonOpt, False),
}
ACTION_ONLY = ("dry_run", "yes", "health_interval")


@dataclass(frozen=True)
class CommandOptions:
    """The options every runbook command shares: the target fields it was given, the config
    file, output and (for actions) safety options."""

    flags: Mapping[str, object] = field(default_factory=dict)
    """Target fields given on the command line (``None``: not given)."""
    config: Path | None = None
    as_json: bool = False
    dry_run: bool = False
    yes: bool = False
    health_interval: float = 10.0

    def target(self) -> Target:
        """The target: these flags over ``MLSGW_*`` over ``[ops]`` over gcloud's defaults."""
        return resolve_target(config=self.config, flags=self.flags)


TargetOptions = CommandOptions
"""The name the runbook's design uses: the target fields derive from ``[ops]``."""
ActionOptions = CommandOptions
"""The options of a service-changing command (same class; kept for its users)."""


def runbook_command(
    fields_: tuple[str, ...] = SERVICE_FIELDS, *, action: bool = False, health_checks: bool = True
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the flags of the target ``fields_`` (``[ops]`` field names), ``--config``
    and ``--json`` (plus ``--dry-run``, ``--yes``, ``--health-interval`` when ``action``;
    without ``--health-interval`` when the action runs no /health checks, ``health_checks``
    false), and pass them as one keyword-only ``options: CommandOptions``.

    Each flag is derived from its ``[ops]`` field, so it is declared nowhere else; a command
    redeclaring one of them is a :class:`TypeError` at import. With ``endpoint`` comes
    ``monitoring_endpoint`` (:func:`with_endpoint_pair`).
    """
    fields_ = with_endpoint_pair(fields_)
    unknown = set(fields_) - set(OPS_FIELDS)
    if unknown:
        raise TypeError(f"not [ops] fields: {sorted(unknown)}")
    common = [
        n
        for n in _COMMON
        if (action or n not in ACTION_ONLY) and (health_checks or n != "health_interval")
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        shared = [_target_parameter(n) for n in fields_] + [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, default=_COMMON[n][1], annotation=_COMMON[n][0]
            )
            for n in common
        ]
        names = [p.name for p in shared]
        mine = [p for p in own.parameters.values() if p.name != "options"]
        clash = {p.name for p in mine} & set(names)
        if clash:
            raise TypeError(f"{command.__name__} redeclares shared options: {sorted(clash)}")

        @functools.wraps(command)
        def with_options(**kwargs: Any) -> None:
            flags = {name: kwargs.pop(name) for name in fields_}
            rest = {name: kwargs.pop(name) for name in common}
            command(**kwargs, options=CommandOptions(flags=flags, **rest))

        signature = own.replace(parameters=[*mine, *shared])
        with_options.__signature__ = signature  # type: ignore[attr-defined]
        annotations = {p.name: p.annotation for p in signature.parameters.values()}
        with_options.__annotations__ = {**annotations, "return": signature.return_annotation}
        return with_options

    return decorate


action_command = runbook_command(SERVICE_FIELDS, action=True)
"""The decorator of every command that changes the Cloud Run service."""


# ---- running a command ------------------------------------------------------------------


def emit(report: Report, target: Target, *, as_json: bool, nagios: bool = False) -> None:
    """Render ``report``: the Nagios line, the one JSON document, or the Rich report."""
    if nagios and isinstance(report, CheckReport):
        typer.echo(output.nagios_line(report))
    elif as_json:
        output.emit_json(output.document(report, target.redacted()))
    else:
        output.render(report, output.stdout_console(), target)


def check_probe_key(target: Target) -> None:
    """A ``prepare`` for commands that probe with ``--probe-key``: a malformed key is a
    usage error before the command runs, not a failure half-way through it."""
    if target.probe_key:
        parse_secret_key(target.probe_key)


def run_command(
    command: str,
    options: CommandOptions,
    body: Callable[[RunContext], Report],
    *,
    needs_service: bool = True,
    records: bool = True,
    nagios: bool = False,
    prepare: Callable[[Target], None] | None = None,
) -> NoReturn:
    """Resolve the target, build the context, run ``body(ctx)``, render, exit with its code.

    Anything wrong before the command ran (target, config, arguments checked by ``prepare``)
    exits 3 with the reason. An error raised by ``body`` becomes the report: refused (3) when
    nothing could have changed, else failed (1), recorded in the ledger when ``records``.
    """
    run_id = new_run_id()
    as_json, dry_run = options.as_json, options.dry_run
    quiet = as_json or nagios
    try:
        target = options.target()
        if needs_service:
            _ = target.service_name  # raises UsageError when incomplete
        if prepare is not None:
            prepare(target)
        cloud = Cloud(target)
        ledger = Ledger.at(target.ledger, os.environ, cloud)
    except MlsgwError as exc:
        output.fail(exc, 3, command=command, as_json=as_json, run_id=run_id, nagios=nagios)
    with output.progress(enabled=not quiet) as reporter:

        def ask(question: str) -> None:
            with reporter.paused():
                confirm(question, yes=options.yes)

        ctx = RunContext(
            command=command,
            target=target,
            cloud=cloud,
            ledger=ledger,
            reporter=reporter,
            run_id=run_id,
            confirm=ask,
            dry_run=dry_run,
            health_interval=options.health_interval,
        )
        try:
            report = body(ctx)
        except MlsgwError as exc:
            if not records:  # a check or a read: it could not be done
                output.fail(
                    exc,
                    3,
                    command=command,
                    as_json=as_json,
                    run_id=run_id,
                    target=target.redacted(),
                    nagios=nagios,
                )
            action_report = ActionReport(command, refusal_code(exc), str(exc), run_id)
            if records and not dry_run:
                try:
                    record(ctx, action_report, {}, None, {"error": type(exc).__name__})
                except LedgerError:
                    pass  # the error itself is what the operator must see
            report = action_report
    emit(report, target, as_json=as_json, nagios=nagios)
    raise typer.Exit(report.exit_code)


def run_action(
    command: str, options: CommandOptions, body: Callable[[RunContext], ActionReport]
) -> NoReturn:
    """:func:`run_command` for a command that changes the Cloud Run service."""
    run_command(command, options, body)
