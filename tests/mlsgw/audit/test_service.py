"""Cloud Run service review (pure)."""

from __future__ import annotations

from mlsgw.audit.service import looks_secret, review_service
from mlsgw.gcp.base import Binding, Condition, EnvVar, IamPolicy, Scaling, ServiceState
from mlsgw.report import Status


def state(**overrides: object) -> ServiceState:
    base: dict[str, object] = {
        "name": "projects/p/locations/r/services/mlsgw",
        "uri": "https://mlsgw-abc.a.run.app",
        "etag": "e",
        "generation": 1,
        "ready": Condition("Ready", "succeeded"),
        "latest_ready_revision": "mlsgw-1",
        "latest_created_revision": "mlsgw-1",
        "traffic": (),
        "traffic_statuses": (),
        "image": "img",
        "scaling": Scaling(),
        "ingress": "internal-and-cloud-load-balancing",
    }
    base.update(overrides)
    return ServiceState(**base)  # type: ignore[arg-type]


NOBODY = IamPolicy((), b"")


def test_public_invoker_binding_or_disabled_invoker_check_is_a_warning() -> None:
    """allUsers in roles/run.invoker, or invoker_iam_disabled: WARNING with the evidence."""
    public = IamPolicy((Binding("roles/run.invoker", ("allUsers",)),), b"")
    [finding] = review_service(state(), public)
    assert finding.code == "service.public-invoker" and finding.severity is Status.WARNING
    assert finding.evidence == ("roles/run.invoker: allUsers",)
    [flag] = review_service(state(invoker_iam_disabled=True), NOBODY)
    assert flag.code == "service.public-invoker" and "invoker_iam_disabled" in flag.evidence[0]


def test_ingress_all_is_information() -> None:
    """Ingress all is reported as info: it does not change the verdict."""
    [finding] = review_service(state(ingress="all"), NOBODY)
    assert finding.code == "service.ingress" and finding.severity is Status.INFO


def test_plain_text_secrets_are_critical_and_never_shown() -> None:
    """Secret-looking env vars with plain values are listed by name and length only."""
    env = (
        EnvVar("MLSGW_METRICS__AUTH", "a-real-looking-metrics-key"),
        EnvVar("MLSGW_PROBE_KEY", None, "probe-key:3"),
        EnvVar("MLSGW_AUTH__ENABLED", "true"),
        EnvVar("CACHE", "redis://:hunter2@10.0.0.3:6379/0"),
    )
    [finding] = review_service(state(env=env), NOBODY)
    assert finding.code == "service.plaintext-secret" and finding.severity is Status.CRITICAL
    assert finding.evidence == (
        "MLSGW_METRICS__AUTH (plain text, 26 characters)",
        "CACHE (plain text, 32 characters)",
    )
    assert "hunter2" not in repr(finding)


def test_secret_detection() -> None:
    """Names and values that announce a secret; paths, references and flags do not."""
    assert looks_secret(EnvVar("GITHUB_TOKEN", "abc"))
    assert looks_secret(EnvVar("X", "nsec1" + "q" * 58))
    assert looks_secret(EnvVar("X", "-----BEGIN EC PRIVATE KEY-----\n..."))
    assert not looks_secret(EnvVar("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json"))
    assert not looks_secret(EnvVar("MLSGW_AUTH__PUBKEY_WHITELIST", "ab" * 32))
    assert not looks_secret(EnvVar("API_KEY", ""))


def test_private_service_is_clean() -> None:
    """Not public, load-balancer ingress, no secrets: one OK finding."""
    [finding] = review_service(state(env=(EnvVar("PORT", "8080"),)), NOBODY)
    assert finding.severity is Status.OK
