"""``mlsgw audit``: the security review (R-K7), every area's findings in one report."""

from __future__ import annotations

import functools
import os
from typing import Annotated

import typer

from mlsgw.audit import pip_audit
from mlsgw.audit.runner import AREA_NAMES, AuditSettings, config_under_review, run
from mlsgw.commands.certcheck import CafileOpt
from mlsgw.commands.common import (
    MAX_LOG_HOURS,
    CommandOptions,
    NagiosOpt,
    fail_early,
    refuse_two_formats,
    run_command,
    runbook_command,
)
from mlsgw.errors import MlsgwError, UsageError
from mlsgw.tls_probe import verifying_context

AUDIT_FIELDS = ("project", "region", "service", "url", "endpoint", "timeout")


@runbook_command(AUDIT_FIELDS)
def audit(
    hours: Annotated[
        float, typer.Option(help="Hours of logs to analyse.", min=0.1, max=MAX_LOG_HOURS)
    ] = 24.0,
    trusted_domain: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-domain",
            help="A domain whose IAM members are expected; repeatable "
            "(default: env MLSGW_TRUSTED_DOMAINS, \\[ops] trusted_domains).",
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
    nagios: NagiosOpt = False,
    *,
    options: CommandOptions,
) -> None:
    """Security review of the service, its project, its config and its dependencies.

    Reviews 4xx access logs, NIP-42 and allowlist refusals, project IAM, the Cloud Run
    service (public invoker, ingress, plain-text secrets), the relay config (--config, else
    MLSGW_CONFIG, under the service's MLSGW_* variables), Firestore PITR and backup
    schedules, dependency vulnerabilities (pip-audit), and the TLS certificate of the
    service URL. Each finding has a severity and its evidence.

    Exit codes: 0 clean, 1 warnings, 2 critical, 3 could not audit (an area failed: no
    credentials, permission denied, pip-audit could not reach its database; or a usage
    error).

    Example: mlsgw audit --project my-proj --region europe-west1 --service mlsgw -c relay.toml
    """
    mirror = osv_url or os.environ.get("MLSGW_OSV_URL") or None
    try:
        refuse_two_formats(options.as_json, nagios)
        unknown = sorted(set(only or ()) - set(AREA_NAMES))
        if unknown:
            raise UsageError(
                f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(AREA_NAMES)}"
            )
        if cafile is not None:
            verifying_context(cafile)  # an unusable --cafile is a usage error, before auditing
    except MlsgwError as exc:
        fail_early("audit", exc, as_json=options.as_json and not nagios, nagios=nagios)
    settings = AuditSettings(
        config_path=config_under_review(options.config),
        trusted_domains=tuple(trusted_domain or ()),
        hours=hours,
        cafile=cafile,
        scan=functools.partial(pip_audit.run_scan, mirror),
        only=tuple(only or ()),
    )
    run_command(
        "audit",
        options,
        functools.partial(run, settings=settings),
        needs_service=False,
        records=False,
        nagios=nagios,
    )
