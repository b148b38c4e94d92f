"""``mlsgw certcheck HOST[:PORT]``: the TLS certificate's days left, issuer and SANs (R-K7)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlsgw.certificates import grade, parse_endpoint
from mlsgw.commands.common import (
    CommandOptions,
    NagiosOpt,
    fail_early,
    refuse_two_formats,
    run_command,
    runbook_command,
)
from mlsgw.errors import MlsgwError
from mlsgw.report import CheckReport
from mlsgw.runbook.context import RunContext
from mlsgw.tls_probe import probe_certificate, verifying_context

CafileOpt = Annotated[
    str | None,
    typer.Option(
        "--cafile",
        help="Trust only the CA certificates in this PEM file (a private CA) instead of the "
        "system's, and require the certificate to verify against them (CRITICAL if not).",
    ),
]


def run(ctx: RunContext, host: str, port: int, cafile: str | None = None) -> CheckReport:
    """One handshake with ``host:port`` (bounded by the target's timeout), graded."""
    ctx.reporter.step(f"TLS handshake with {host}:{port}")
    probe = probe_certificate(host, port, ctx.target.timeout, cafile)
    result = grade(probe, ctx.clock(), require_trust=cafile is not None)
    return CheckReport("certcheck", (result,), ctx.run_id, title=f"mlsgw certcheck — {host}:{port}")


@runbook_command(("timeout",))
def certcheck(
    endpoint: Annotated[
        str, typer.Argument(metavar="HOST[:PORT]", help="Server to check; port 443 by default.")
    ],
    cafile: CafileOpt = None,
    nagios: NagiosOpt = False,
    *,
    options: CommandOptions,
) -> None:
    """Check a server's TLS certificate: days left, issuer, SANs.

    WARNING under 21 days, CRITICAL under 7, and CRITICAL with the reason when the
    connection is refused or the handshake fails. A certificate that does not verify
    against the system's CAs (a private CA, another host name) is graded by its days left,
    with the reason shown; with --cafile it must verify against that file, else CRITICAL.
    --timeout bounds the connection and the handshake.

    Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments). With --nagios every
    outcome, usage errors included, is one plugin line on stdout.

    Example: mlsgw certcheck relay.example.com --nagios
    """
    try:
        refuse_two_formats(options.as_json, nagios)
        host, port = parse_endpoint(endpoint)
        if cafile is not None:
            verifying_context(cafile)  # an unusable --cafile is a usage error, before probing
    except MlsgwError as exc:
        fail_early("certcheck", exc, as_json=options.as_json and not nagios, nagios=nagios)
    run_command(
        "certcheck",
        options,
        lambda ctx: run(ctx, host, port, cafile),
        needs_service=False,
        records=False,
        nagios=nagios,
    )
