"""Cloud Run service review: public invoker, ingress, env vars that look like plain-text secrets."""

from __future__ import annotations

import re

from mlsgw.audit.findings import Finding, or_clean
from mlsgw.gcp.base import EnvVar, IamPolicy, ServiceState
from mlsgw.report import Status

AREA = "service"
INVOKER = "roles/run.invoker"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")

SECRET_NAME = re.compile(
    r"(SECRET|PASSW(OR)?D|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|NSEC|_KEY$|(^|_)AUTH$|DSN$)",
    re.IGNORECASE,
)
"""Names that announce a secret (``MLSGW_METRICS__AUTH``, ``MLSGW_PROBE_KEY``, ``*_TOKEN``)."""
SECRET_VALUE = re.compile(
    r"(^nsec1[02-9ac-hj-np-z]{20,}$"  # a Nostr secret key
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|^[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"  # a URL with a password (redis://:pw@host)
    r"|^AKIA[0-9A-Z]{16}$|^gh[pousr]_[A-Za-z0-9]{30,}|^xox[abprs]-|^sk_live_)"
)
"""Values that are secrets whatever the variable is called."""


def looks_secret(var: EnvVar) -> bool:
    """A plain-text value that is, or is named like, a secret (paths and references are not)."""
    value = var.value
    if not value or var.secret is not None:
        return False
    if SECRET_VALUE.search(value):
        return True
    return bool(SECRET_NAME.search(var.name)) and not value.startswith(("/", "./", "projects/"))


def review_service(service: ServiceState, invoker_policy: IamPolicy) -> list[Finding]:
    """Findings for the service's invoker policy, ingress and environment."""
    name = service.name.rsplit("/", 1)[-1]
    findings: list[Finding] = []
    public = [m for m in invoker_policy.members_of(INVOKER) if m in PUBLIC_MEMBERS]
    if public or service.invoker_iam_disabled:
        evidence = [f"{INVOKER}: {m}" for m in public]
        if service.invoker_iam_disabled:
            evidence.append("invoker_iam_disabled: true (Cloud Run does not check the invoker)")
        findings.append(
            Finding(
                AREA,
                "service.public-invoker",
                Status.WARNING,
                f"anyone on the internet can call {name}: expected for a public relay behind "
                "its allowlist; `mlsgw lockdown` closes it in an incident",
                tuple(evidence),
                {"members": public, "invoker_iam_disabled": service.invoker_iam_disabled},
            )
        )
    if service.ingress == "all":
        findings.append(
            Finding(
                AREA,
                "service.ingress",
                Status.INFO,
                f"ingress all: {name} is reachable directly on its run.app URL, "
                "not only through a load balancer (and its Cloud Armor policy)",
                (f"ingress: {service.ingress}",),
                {"ingress": service.ingress},
            )
        )
    secrets = [v for v in service.env if looks_secret(v)]
    if secrets:
        findings.append(
            Finding(
                AREA,
                "service.plaintext-secret",
                Status.CRITICAL,
                f"{len(secrets)} env var(s) of {name} hold what looks like a secret in plain "
                "text (readable by anyone with run.services.get): move them to Secret Manager",
                tuple(f"{v.name} (plain text, {len(v.value or '')} characters)" for v in secrets),
                {"variables": [v.name for v in secrets]},
            )
        )
    return or_clean(
        AREA,
        findings,
        f"{name}: not public, ingress {service.ingress}, "
        f"{len(service.env)} env var(s) without plain-text secrets",
    )
