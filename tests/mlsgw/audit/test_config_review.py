"""Relay config review (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from mlsgw.audit.config_review import (
    FROM_SECRET_MANAGER,
    refused_config,
    review_config,
    service_overrides,
    weak_key,
)
from mlsgw.gcp.base import EnvVar
from mlsgw.report import Status
from relay.config import Config, load_config

LISTED = "ab" * 32


def config(**sections: dict[str, object]) -> Config:
    base = load_config(None, {"MLSGW_CONFIG": ""})
    base = dataclasses.replace(
        base,
        auth=dataclasses.replace(base.auth, pubkey_whitelist=(LISTED,)),
        data=dataclasses.replace(base.data, backend="firestore"),
    )
    for name, values in sections.items():
        base = dataclasses.replace(
            base, **{name: dataclasses.replace(getattr(base, name), **values)}
        )
    return base


@pytest.mark.parametrize(
    ("sections", "code"),
    [
        ({"auth": {"enabled": False}}, "config.auth-disabled"),
        ({"auth": {"pubkey_whitelist": ()}}, "config.empty-allowlist"),
        ({"metrics": {"enabled": True, "auth": None}}, "config.metrics-key"),
        ({"metrics": {"enabled": True, "auth": "changeme"}}, "config.metrics-key"),
        ({"metrics": {"enabled": True, "auth": "short"}}, "config.metrics-key"),
    ],
)
def test_each_weak_setting_is_a_warning(sections: dict[str, dict[str, object]], code: str) -> None:
    """One finding of the expected code, WARNING, with the file and key as evidence."""
    findings = review_config(config(**sections), on_cloud_run=False)
    assert [(f.code, f.severity) for f in findings] == [(code, Status.WARNING)]


def test_sqlite_on_cloud_run_is_critical_and_only_on_cloud_run() -> None:
    """SQLite data dies with the instance on Cloud Run; locally it is fine."""
    sqlite = config(data={"backend": None})
    [finding] = review_config(sqlite, on_cloud_run=True)
    assert finding.code == "config.sqlite-on-cloud-run" and finding.severity is Status.CRITICAL
    assert review_config(sqlite, on_cloud_run=False)[0].severity is Status.OK


def test_production_config_is_clean() -> None:
    """Auth on, allowlist set, strong metrics key, API with relay_url, Firestore store."""
    good = config(
        metrics={"enabled": True, "auth": "k3y-0f-a-dec3nt-l3ngth"},
        mls_gateway={"enable_api": True},
        information={"relay_url": "wss://relay.example.com"},
    )
    [finding] = review_config(good, on_cloud_run=True)
    assert finding.severity is Status.OK


@pytest.mark.parametrize(
    "key", ["<metrics-key>", "${METRICS_KEY}", "xxxxxxxxxxxxxxxxxxxx", "secret"]
)
def test_placeholder_keys(key: str) -> None:
    """Template leftovers are placeholders whatever their length."""
    assert weak_key(key) == "is a placeholder"


def test_service_overrides_take_mlsgw_settings_and_mark_secret_references() -> None:
    """Plain ``MLSGW_<SECTION>__<KEY>`` values become overrides; Secret Manager references are
    set but unread; other variables are ignored."""
    env = (
        EnvVar("MLSGW_AUTH__ENABLED", "false"),
        EnvVar("MLSGW_METRICS__AUTH", None, "metrics-key:2"),
        EnvVar("MLSGW_CONFIG", "/app/relay.toml"),
        EnvVar("PORT", "8080"),
    )
    overrides, secret = service_overrides(env)
    assert overrides == {"MLSGW_AUTH__ENABLED": "false", "MLSGW_METRICS__AUTH": FROM_SECRET_MANAGER}
    assert secret == frozenset({"metrics.auth"})


def test_metrics_key_from_secret_manager_is_not_weak() -> None:
    """A key held in Secret Manager cannot be read, and is not reported as a placeholder."""
    cfg = config(metrics={"enabled": True, "auth": FROM_SECRET_MANAGER})
    assert review_config(cfg, on_cloud_run=False)[0].code == "config.metrics-key"
    [finding] = review_config(cfg, on_cloud_run=False, from_secrets=frozenset({"metrics.auth"}))
    assert finding.severity is Status.OK


def test_a_config_the_relay_refuses_is_critical_with_every_problem() -> None:
    """The relay would not start: CRITICAL, each loader problem as evidence."""
    [finding] = refused_config(["a.toml: auth.enabled: expected a boolean"], "a.toml")
    assert finding.code == "config.invalid" and finding.severity is Status.CRITICAL
    assert finding.evidence == ("a.toml: auth.enabled: expected a boolean",)
