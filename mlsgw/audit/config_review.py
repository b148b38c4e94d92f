"""Relay config review: a config the relay refuses, auth disabled, empty allowlist, weak
metrics key, and SQLite on Cloud Run."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mlsgw.audit.findings import Finding, or_clean
from mlsgw.gcp.base import EnvVar
from mlsgw.report import Status
from relay.config import Config

AREA = "config"
PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "metrics",
        "token",
        "todo",
        "xxx",
        "example",
        "default",
        "test",
        "admin",
        "replace-me",
        "your-metrics-key",
    }
)
PLACEHOLDER_SHAPE = re.compile(r"^(<.*>|\$\{.*\}|x+|\*+|0+|1234.*)$", re.IGNORECASE)
MIN_KEY_LENGTH = 16
FROM_SECRET_MANAGER = "<from Secret Manager>"
"""The value given to a setting whose env var is a Secret Manager reference (not read)."""


def service_overrides(env: Sequence[EnvVar]) -> tuple[dict[str, str], frozenset[str]]:
    """The service's ``MLSGW_<SECTION>__<KEY>`` variables as config overrides, and the
    settings (``metrics.auth``) whose value comes from Secret Manager: set, but not read."""
    overrides: dict[str, str] = {}
    secret: set[str] = set()
    for var in env:
        if not var.name.startswith("MLSGW_") or "__" not in var.name:
            continue
        if var.secret is not None:
            overrides[var.name] = FROM_SECRET_MANAGER
            secret.add(var.name.removeprefix("MLSGW_").lower().replace("__", "."))
        elif var.value is not None:
            overrides[var.name] = var.value
    return overrides, frozenset(secret)


def weak_key(key: str) -> str | None:
    """Why ``key`` is not a real secret, or ``None``."""
    if key.strip().lower() in PLACEHOLDERS or PLACEHOLDER_SHAPE.match(key.strip()):
        return "is a placeholder"
    if len(key) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters"
    return None


def refused_config(problems: Sequence[str], source: str) -> list[Finding]:
    """The relay refuses to start with this config: one critical finding with every problem."""
    return [
        Finding(
            AREA,
            "config.invalid",
            Status.CRITICAL,
            f"the relay refuses this config ({source}): `mlsgw serve` would not start",
            tuple(problems),
            {"problems": list(problems)},
        )
    ]


def review_config(
    config: Config,
    *,
    on_cloud_run: bool,
    source: str | None = None,
    from_secrets: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Findings for the relay configuration; ``on_cloud_run``: it is deployed as a service.

    ``source`` describes where the settings came from (default: the file); settings named in
    ``from_secrets`` hold a Secret Manager reference and are taken as strong.
    """
    source = source or config.source or "built-in defaults"
    findings: list[Finding] = []

    def add(code: str, severity: Status, summary: str, evidence: str) -> None:
        findings.append(Finding(AREA, code, severity, summary, (evidence,), {"file": source}))

    if not config.auth.enabled:
        add(
            "config.auth-disabled",
            Status.WARNING,
            "NIP-42 authentication is disabled: no one can prove who they are, so the "
            "allowlist and the MLS rules cannot admit anyone",
            f"{source}: [auth] enabled = false",
        )
    elif not config.auth.allowed_pubkeys:
        add(
            "config.empty-allowlist",
            Status.WARNING,
            "the pubkey allowlist is empty: anyone may publish and read ordinary kinds",
            f"{source}: [auth] pubkey_whitelist = []",
        )
    if config.metrics.enabled:
        key = config.metrics.auth or ""
        why = "is empty: /metrics is open to anyone" if not key else weak_key(key)
        if "metrics.auth" in from_secrets:
            why = None
        if why:
            add(
                "config.metrics-key",
                Status.WARNING,
                f"the metrics key {why}",
                f"{source}: [metrics] auth {'unset' if not key else '= ***'}",
            )
    if on_cloud_run and config.store_backend == "sqlite":
        add(
            "config.sqlite-on-cloud-run",
            Status.CRITICAL,
            "the store is SQLite on Cloud Run: the data lives inside the instance and is lost "
            "with every new revision, restart or scale-in",
            f"{source}: data.backend = sqlite (the default), target is a Cloud Run service",
        )
    return or_clean(AREA, findings, f"{source}: auth on, allowlist set, no weak settings")
