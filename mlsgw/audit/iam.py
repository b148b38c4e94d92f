"""Project IAM review: public members, primitive owner/editor grants, members outside
``[ops] trusted_domains``."""

from __future__ import annotations

from collections.abc import Sequence

from mlsgw.audit.findings import Finding, or_clean
from mlsgw.gcp.base import IamPolicy
from mlsgw.report import Status

AREA = "project-iam"
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
PRIMITIVE_ROLES = ("roles/owner", "roles/editor")
SERVICE_AGENT_DOMAINS = frozenset(
    {
        "cloudbuild.gserviceaccount.com",
        "cloudservices.gserviceaccount.com",
        "developer.gserviceaccount.com",
        "appspot.gserviceaccount.com",
        "compute-system.iam.gserviceaccount.com",
        "container-engine-robot.iam.gserviceaccount.com",
        "serverless-robot-prod.iam.gserviceaccount.com",
    }
)
"""Domains of the service agents Google manages for every project (plus ``gcp-sa-*``)."""


def member_domain(member: str) -> str | None:
    """The domain of ``user:``, ``group:``, ``serviceAccount:`` and ``domain:`` members."""
    kind, _, rest = member.partition(":")
    if kind == "domain":
        return rest.lower()
    if kind in ("user", "group", "serviceAccount") and "@" in rest:
        return rest.rsplit("@", 1)[1].split("?", 1)[0].lower()
    return None


def _trusted(member: str, domain: str, project: str, trusted: Sequence[str]) -> bool:
    if any(domain == t or domain.endswith("." + t) for t in trusted):
        return True
    if not member.startswith("serviceAccount:"):
        return False
    # The project's own service accounts, and Google's service agents
    # (service-123@gcp-sa-run.iam.gserviceaccount.com, 123@cloudbuild.gserviceaccount.com).
    own = (f"{project}.iam.gserviceaccount.com", f"{project}.appspot.gserviceaccount.com")
    if domain in own:
        return True
    return domain.startswith("gcp-sa-") or domain in SERVICE_AGENT_DOMAINS


def review_project_iam(
    policy: IamPolicy, project: str, trusted_domains: Sequence[str]
) -> list[Finding]:
    """Findings for the project's IAM policy; one per finding type, every binding as evidence."""
    public = [(b.role, m) for b in policy.bindings for m in b.members if m in PUBLIC_MEMBERS]
    primitive = [
        (b.role, m) for b in policy.bindings if b.role in PRIMITIVE_ROLES for m in b.members
    ]
    findings: list[Finding] = []
    if public:
        findings.append(
            Finding(
                AREA,
                "iam.public-member",
                Status.CRITICAL,
                f"project {project} grants {len(public)} role(s) to everyone on the internet",
                tuple(f"{role}: {member}" for role, member in public),
                {"bindings": [list(p) for p in public]},
            )
        )
    if primitive:
        findings.append(
            Finding(
                AREA,
                "iam.primitive-role",
                Status.WARNING,
                f"{len(primitive)} owner/editor grant(s) on project {project}: "
                "use predefined roles with only the permissions needed",
                tuple(f"{role}: {member}" for role, member in primitive),
                {"bindings": [list(p) for p in primitive]},
            )
        )
    if trusted_domains:
        findings.extend(_outside(policy, project, trusted_domains))
    checked = (
        f"every member in {', '.join(trusted_domains)}"
        if trusted_domains
        else "member domains not checked (set [ops] trusted_domains)"
    )
    return or_clean(
        AREA,
        findings,
        f"{len(policy.bindings)} binding(s) on project {project}: no public members, "
        f"no owner/editor grants, {checked}",
    )


def _outside(policy: IamPolicy, project: str, trusted_domains: Sequence[str]) -> list[Finding]:
    outside = sorted(
        {
            (b.role, m)
            for b in policy.bindings
            for m in b.members
            if (domain := member_domain(m)) and not _trusted(m, domain, project, trusted_domains)
        }
    )
    if not outside:
        return []
    return [
        Finding(
            AREA,
            "iam.external-member",
            Status.WARNING,
            f"{len({m for _, m in outside})} member(s) outside "
            f"{', '.join(trusted_domains)} hold roles on project {project}",
            tuple(f"{role}: {member}" for role, member in outside),
            {"bindings": [list(p) for p in outside], "trusted_domains": list(trusted_domains)},
        )
    ]
