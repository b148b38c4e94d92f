"""What a backup keeps of the service and the relay config, secrets removed."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
_SECRET_NAME = re.compile(
    r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|AUTH|REDIS_URL|DSN)", re.IGNORECASE
)


def secret_name(name: str) -> bool:
    """An environment variable whose value is probably a secret (by its name)."""
    return bool(_SECRET_NAME.search(name))


def _containers(description: Mapping[str, Any]) -> list[dict[str, Any]]:
    template = description.get("template")
    if not isinstance(template, dict):
        return []
    containers = template.get("containers")
    return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []


def redact_service(description: Mapping[str, Any]) -> dict[str, Any]:
    """The service resource with every secret-looking plain env value replaced by ``***``
    (secret references, ``valueSource``, are kept: they name a secret, not its value)."""
    copied: dict[str, Any] = copy.deepcopy(dict(description))
    for container in _containers(copied):
        for var in container.get("env") or []:
            if isinstance(var, dict) and "value" in var and secret_name(str(var.get("name", ""))):
                var["value"] = REDACTED
    return copied


def relay_environment(description: Mapping[str, Any]) -> dict[str, str]:
    """The plain ``MLSGW_*`` and ``PORT`` variables of the service's first container: what
    the relay reads over its config file."""
    containers = _containers(description)
    if not containers:
        return {}
    env = {}
    for var in containers[0].get("env") or []:
        if not isinstance(var, dict) or "value" not in var:
            continue
        name = str(var.get("name", ""))
        if name.startswith("MLSGW_") or name == "PORT":
            env[name] = str(var["value"])
    return env
