"""``mlsgw audit``: the security review (R-K7), every area's findings in one report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlsgw import output
from mlsgw.audit import pip_audit
from mlsgw.audit.runner import AREA_NAMES, AuditContext, run
from mlsgw.commands.certcheck import CafileOpt
from mlsgw.commands.common import (
    PANEL_TARGET,
    EndpointOpt,
    JsonOpt,
    NagiosOpt,
    ProjectOpt,
    RegionOpt,
    ServiceOpt,
    TimeoutOpt,
    UrlOpt,
    new_run_id,
)
from mlsgw.errors import MlsgwError, UsageError
from mlsgw.gcp.clients import Cloud
from mlsgw.target import resolve_target
from relay.config import load_config

AuditConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Relay config file to review; its \\[ops] gives defaults (default: $MLSGW_CONFIG).",
        rich_help_panel=PANEL_TARGET,
    ),
]


def _config_path(config: Path | None) -> Path | None:
    """``--config``, else ``$MLSGW_CONFIG``: the relay config under review."""
    if config is not None:
        return config
    named = os.environ.get("MLSGW_CONFIG")
    return Path(named) if named else None


def audit(
    project: ProjectOpt = None,
    region: RegionOpt = None,
    service: ServiceOpt = None,
    url: UrlOpt = None,
    endpoint: EndpointOpt = None,
    config: AuditConfigOpt = None,
    hours: Annotated[float, typer.Option(help="Hours of logs to analyse.", min=0.1)] = 24.0,
    trusted_domain: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-domain",
            help="A domain whose IAM members are expected; repeatable "
            "(default: \\[ops] trusted_domains).",
        ),
    ] = None,
    osv_url: Annotated[
        str | None,
        typer.Option(
            help="Query this OSV API (a mirror) for vulnerabilities instead of PyPI "
            "(env MLSGW_OSV_URL).",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help=f"Review only this area; repeatable. Areas: {', '.join(AREA_NAMES)}.",
        ),
    ] = None,
    cafile: CafileOpt = None,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
    nagios: NagiosOpt = False,
) -> None:
    """Security review: 4xx access logs, NIP-42 and allowlist refusals, project IAM, the
    Cloud Run service (public invoker, ingress, plain-text secrets), the relay config,
    Firestore PITR and backup schedules, dependency vulnerabilities (pip-audit), and the
    TLS certificate of the service URL. Each finding has a severity and its evidence.

    Exit 0 clean, 1 warnings, 2 critical, 3 could not audit (an area failed: no
    credentials, permission denied, pip-audit could not reach its database).

    Example: mlsgw audit --project my-proj --region europe-west1 --service mlsgw -c relay.toml
    """
    run_id = new_run_id()
    try:
        if as_json and nagios:
            raise UsageError("--json and --nagios are two output formats: choose one")
        unknown = sorted(set(only or ()) - set(AREA_NAMES))
        if unknown:
            raise UsageError(
                f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(AREA_NAMES)}"
            )
        target = resolve_target(
            config=config,
            timeout=timeout,
            url=url,
            project=project,
            region=region,
            service=service,
            endpoint=endpoint,
        )
        config_path = _config_path(config)
        ops = load_config(config, dict(os.environ)).ops
    except MlsgwError as exc:
        output.fail(exc, 3, command="audit", as_json=as_json, run_id=run_id)
    mirror = osv_url or os.environ.get("MLSGW_OSV_URL") or None
    ctx = AuditContext(
        target=target,
        cloud=Cloud(target),
        config_path=config_path,
        trusted_domains=tuple(trusted_domain or ops.trusted_domains),
        hours=hours,
        cafile=cafile,
        scan=lambda: pip_audit.run_scan(mirror),
        only=tuple(only or ()),
    )
    with output.progress(enabled=not (as_json or nagios)) as reporter:
        report = run(ctx, reporter, run_id)
    if nagios:
        typer.echo(output.nagios_line(report, "MLSGW AUDIT"))
    elif as_json:
        output.emit_json(output.audit_document(report, target.redacted()))
    else:
        where = target.service or target.url or "local"
        output.render_checks(report, output.stdout_console(), f"mlsgw audit — {where}", "finding")
    raise typer.Exit(report.exit_code)
