"""What the runbook commands act on (R-O1): project, region, service, URL and API endpoints.

Precedence, highest first: command-line flags, ``MLSGW_PROJECT`` / ``MLSGW_REGION`` /
``MLSGW_SERVICE`` / ``MLSGW_URL`` / ``MLSGW_GCP_ENDPOINT`` / ``MLSGW_MONITORING_ENDPOINT`` /
``MLSGW_PROBE_KEY`` / ``MLSGW_METRICS_KEY`` / ``MLSGW_LEDGER``, then ``[ops]`` in the config
file (which itself honours ``MLSGW_OPS__<KEY>``). This module is the only place the runbook
reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from mlsgw.errors import UsageError
from relay.config import ConfigError, OpsSettings, load_config

ENV_NAMES: dict[str, str] = {
    "project": "MLSGW_PROJECT",
    "region": "MLSGW_REGION",
    "service": "MLSGW_SERVICE",
    "url": "MLSGW_URL",
    "endpoint": "MLSGW_GCP_ENDPOINT",
    "monitoring_endpoint": "MLSGW_MONITORING_ENDPOINT",
    "probe_key": "MLSGW_PROBE_KEY",
    "metrics_key": "MLSGW_METRICS_KEY",
    "ledger": "MLSGW_LEDGER",
}


@dataclass(frozen=True)
class Target:
    """The resolved target of a runbook command; any field may be unset."""

    project: str | None = None
    region: str | None = None
    service: str | None = None
    url: str | None = None
    endpoint: str | None = None
    """Base URL for every Google client with a REST transport (anonymous credentials)."""
    monitoring_endpoint: str | None = None
    """``host:port`` of a plaintext gRPC Cloud Monitoring endpoint (anonymous)."""
    probe_key: str | None = None
    metrics_key: str | None = None
    ledger: str | None = None
    timeout: float = 10.0

    @property
    def has_service(self) -> bool:
        """Project, region and service are all known."""
        return bool(self.project and self.region and self.service)

    @property
    def service_name(self) -> str:
        """``projects/P/locations/R/services/S``; :class:`UsageError` when incomplete."""
        missing = [n for n in ("project", "region", "service") if not getattr(self, n)]
        if missing:
            flags = ", ".join(f"--{n}" for n in missing)
            envs = ", ".join(ENV_NAMES[n] for n in missing)
            raise UsageError(
                f"no Cloud Run service given: set {flags} (or {envs}, or [ops] in the config)"
            )
        return f"projects/{self.project}/locations/{self.region}/services/{self.service}"

    def redacted(self) -> dict[str, object]:
        """The target as a dict for reports and the ledger, secrets replaced."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("probe_key", "metrics_key") and value:
                value = "***"
            out[f.name] = value
        return out


def resolve_target(
    *,
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
    **flags: str | None,
) -> Target:
    """Merge flags over ``MLSGW_*`` env over ``[ops]``; :class:`UsageError` on a bad config."""
    env = dict(os.environ) if environ is None else dict(environ)
    try:
        ops: OpsSettings = load_config(config, env).ops
    except ConfigError as exc:
        raise UsageError("invalid configuration: " + "; ".join(exc.problems)) from None
    unknown = set(flags) - set(ENV_NAMES)
    if unknown:
        raise TypeError(f"unknown target fields: {sorted(unknown)}")
    values: dict[str, str | None] = {}
    for name, env_name in ENV_NAMES.items():
        values[name] = flags.get(name) or env.get(env_name) or getattr(ops, name)
    return Target(**values, timeout=timeout if timeout is not None else ops.timeout)
