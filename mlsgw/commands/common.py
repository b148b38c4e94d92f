"""What every runbook command shares: options, the command class, run ids, confirmation, and
for the service-changing commands the shared :class:`ActionOptions` and :func:`run_action`."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_type_hints

import typer
from typer.core import TyperCommand

from mlsgw import output
from mlsgw.actions import ActionContext, record, refusal_code
from mlsgw.errors import LedgerError, MlsgwError, Refused
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.report import ActionReport
from mlsgw.target import ENV_NAMES, Target, resolve_target

PANEL_TARGET = "Target"
PANEL_OUTPUT = "Output"
PANEL_SAFETY = "Safety"


class RunbookCommand(TyperCommand):
    """A Typer command whose usage errors exit 3 (UNKNOWN / refused), not click's 2.

    Exit 2 means CRITICAL to Nagios and cron, so a typo must not look like an outage.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        """Parse the arguments; a usage error (click's exit 2) carries exit code 3."""
        try:
            return super().make_context(*args, **kwargs)
        except Exception as exc:
            if getattr(exc, "exit_code", None) == 2:  # UsageError and its subclasses
                exc.exit_code = 3  # type: ignore[attr-defined]
            raise


def new_run_id() -> str:
    """A sortable, unique run id: ``20261129T071500Z-1a2b3c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def fail_early(command: str, error: MlsgwError, *, as_json: bool) -> NoReturn:
    """Exit 3 before the command ran (bad arguments, unusable target or ledger)."""
    output.fail(error, 3, command=command, as_json=as_json, run_id=new_run_id())


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


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file whose \\[ops] gives defaults "
        "(default: $MLSGW_CONFIG or config/mlsgw.toml).",
        rich_help_panel=PANEL_TARGET,
    ),
]
ProjectOpt = Annotated[
    str | None,
    typer.Option(help="Google Cloud project (env MLSGW_PROJECT).", rich_help_panel=PANEL_TARGET),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(help="Cloud Run region (env MLSGW_REGION).", rich_help_panel=PANEL_TARGET),
]
ServiceOpt = Annotated[
    str | None,
    typer.Option(help="Cloud Run service (env MLSGW_SERVICE).", rich_help_panel=PANEL_TARGET),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        help="Public URL of the relay (default: the service's URL) (env MLSGW_URL).",
        rich_help_panel=PANEL_TARGET,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        help="Base URL for the REST Google APIs, anonymous (tests, stand-ins) "
        "(env MLSGW_GCP_ENDPOINT).",
        rich_help_panel=PANEL_TARGET,
    ),
]
MonitoringEndpointOpt = Annotated[
    str | None,
    typer.Option(
        help="HOST:PORT of a plaintext gRPC Cloud Monitoring endpoint, anonymous "
        "(env MLSGW_MONITORING_ENDPOINT).",
        rich_help_panel=PANEL_TARGET,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Seconds per call or check (default: \\[ops] timeout).", min=0.1),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document instead of the report.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
LedgerOpt = Annotated[
    str | None,
    typer.Option(
        help="Ledger file or gs://BUCKET/OBJECT (default ~/.local/state/mlsgw/ledger.jsonl) "
        "(env MLSGW_LEDGER).",
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
        rich_help_panel=PANEL_SAFETY,
    ),
]


@dataclass(frozen=True)
class ActionOptions:
    """The options every service-changing command takes after its own, in ``--help`` order.

    The field types are the Typer options themselves: :func:`action_command` turns the fields
    into the command's parameters, so each flag is declared once, here.
    """

    project: ProjectOpt = None
    region: RegionOpt = None
    service: ServiceOpt = None
    url: UrlOpt = None
    endpoint: EndpointOpt = None
    ledger: LedgerOpt = None
    timeout: TimeoutOpt = None
    config: ConfigOpt = None
    dry_run: DryRunOpt = False
    yes: YesOpt = False
    health_interval: HealthIntervalOpt = 10.0
    as_json: JsonOpt = False

    def target(self) -> Target:
        """The target: these flags over ``MLSGW_*`` over ``[ops]``."""
        flags = {name: getattr(self, name) for name in ENV_NAMES if hasattr(self, name)}
        return resolve_target(config=self.config, timeout=self.timeout, **flags)


def action_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the :class:`ActionOptions` flags and pass them as ``options=``.

    ``command`` declares its own options and a keyword-only ``options: ActionOptions``; Typer
    sees its own parameters followed by one per :class:`ActionOptions` field.
    """
    own = inspect.signature(command, eval_str=True)
    hints = get_type_hints(ActionOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
        )
        for f in fields(ActionOptions)
    ]
    names = [p.name for p in shared]
    mine = [p for p in own.parameters.values() if p.name != "options"]
    clash = {p.name for p in mine} & set(names)
    if clash:
        raise TypeError(f"{command.__name__} redeclares shared options: {sorted(clash)}")

    @functools.wraps(command)
    def with_options(**kwargs: Any) -> None:
        options = ActionOptions(**{name: kwargs.pop(name) for name in names})
        command(**kwargs, options=options)

    signature = own.replace(parameters=[*mine, *shared])
    with_options.__signature__ = signature  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    with_options.__annotations__["return"] = signature.return_annotation
    return with_options


def run_action(
    command: str, options: ActionOptions, body: Callable[[ActionContext], ActionReport]
) -> NoReturn:
    """Resolve the target, build the Cloud Run adapter, run ``body``, render, exit."""
    run_id = new_run_id()
    as_json, dry_run = options.as_json, options.dry_run
    try:
        target = options.target()
        _ = target.service_name  # raises UsageError when incomplete
        cloud = Cloud(target)
        ledger = Ledger.at(target.ledger, os.environ, cloud)
        run = cloud.run()
    except MlsgwError as exc:
        output.fail(exc, 3, command=command, as_json=as_json, run_id=run_id)
    with output.progress(enabled=not as_json) as reporter:

        def ask(question: str) -> None:
            with reporter.paused():
                confirm(question, yes=options.yes)

        ctx = ActionContext(
            target=target,
            run=run,
            ledger=ledger,
            reporter=reporter,
            run_id=run_id,
            confirm=ask,
            dry_run=dry_run,
            health_interval=options.health_interval,
        )
        try:
            report = body(ctx)
        except LedgerError as exc:
            output.fail(exc, 1, command=command, as_json=as_json, run_id=run_id)
        except MlsgwError as exc:
            outcome = refusal_code(exc)
            report = ActionReport(command, outcome, str(exc), run_id)
            if not dry_run:
                record(ctx, report, {}, None, {"error": type(exc).__name__})
    if as_json:
        output.emit_json(output.action_document(report, target.redacted()))
    else:
        output.render_action(report, output.stdout_console())
    raise typer.Exit(report.exit_code)
