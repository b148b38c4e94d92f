"""Project IAM review (pure)."""

from __future__ import annotations

from mlsgw.audit.iam import member_domain, review_project_iam
from mlsgw.gcp.base import Binding, IamPolicy
from mlsgw.report import Status


def policy(**roles: list[str]) -> IamPolicy:
    return IamPolicy(
        tuple(Binding("roles/" + r.replace("_", "."), tuple(m)) for r, m in roles.items()), b""
    )


def codes(findings: list) -> dict[str, Status]:  # type: ignore[type-arg]
    return {f.code: f.severity for f in findings}


def test_public_member_is_critical_with_the_binding_as_evidence() -> None:
    """allUsers on any project role: CRITICAL."""
    findings = review_project_iam(policy(viewer=["allUsers", "user:a@example.com"]), "p", ())
    public = next(f for f in findings if f.code == "iam.public-member")
    assert public.severity is Status.CRITICAL
    assert public.evidence == ("roles/viewer: allUsers",)


def test_owner_and_editor_grants_are_warnings() -> None:
    """Primitive roles are listed with each member."""
    findings = review_project_iam(
        policy(
            owner=["user:a@example.com"],
            editor=["serviceAccount:1-compute@developer.gserviceaccount.com"],
        ),
        "p",
        (),
    )
    primitive = next(f for f in findings if f.code == "iam.primitive-role")
    assert primitive.severity is Status.WARNING and len(primitive.evidence) == 2


def test_members_outside_trusted_domains_are_warnings_service_agents_are_not() -> None:
    """gmail.com is outside; the project's own SAs and Google service agents are trusted."""
    findings = review_project_iam(
        policy(
            run_admin=["user:ops@example.com", "user:eve@gmail.com"],
            run_serviceAgent=["serviceAccount:service-1@gcp-sa-run.iam.gserviceaccount.com"],
            datastore_user=["serviceAccount:relay@p.iam.gserviceaccount.com"],
            viewer=["serviceAccount:x@other-proj.iam.gserviceaccount.com"],
        ),
        "p",
        ("example.com",),
    )
    external = next(f for f in findings if f.code == "iam.external-member")
    assert external.evidence == (
        "roles/run.admin: user:eve@gmail.com",
        "roles/viewer: serviceAccount:x@other-proj.iam.gserviceaccount.com",
    )


def test_clean_policy_is_ok_and_says_what_was_checked() -> None:
    """No findings: one OK line naming the trusted domains."""
    [finding] = review_project_iam(
        policy(run_admin=["group:ops@example.com"]), "p", ("example.com",)
    )
    assert finding.severity is Status.OK and "every member in example.com" in finding.summary


def test_without_trusted_domains_the_domain_check_is_named_as_not_done() -> None:
    """No [ops] trusted_domains: the summary says the domains were not checked."""
    [finding] = review_project_iam(policy(run_admin=["user:eve@gmail.com"]), "p", ())
    assert finding.severity is Status.OK and "trusted_domains" in finding.summary


def test_member_domain() -> None:
    """Domains of each member kind; special members have none."""
    assert member_domain("user:A@Example.com") == "example.com"
    assert member_domain("domain:example.org") == "example.org"
    assert member_domain("deleted:user:x@y.com?uid=1") is None
    assert member_domain("allUsers") is None
