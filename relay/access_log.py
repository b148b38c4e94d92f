"""The session observer the server plugs in: Prometheus counters plus one log line per refusal.

``mlsgw audit`` reads these lines back from Cloud Logging (``jsonPayload.audit =
"access_rejected"``) to report NIP-42 failures and allowlist rejections per client IP, so the
field names here are an interface: ``audit``, ``stage`` (``auth``, ``event``, ``req``),
``reason`` and ``ip``. Pubkeys and event content are never logged (see :mod:`relay.logs`).
"""

from __future__ import annotations

import logging

from relay.core.session import Observer

log = logging.getLogger("relay.access")

AUDIT_TAG = "access_rejected"
"""The value of the ``audit`` field of every access-rejection log line."""

ACCESS_REASONS = frozenset({"auth-required", "restricted", "blocked"})
"""EVENT and REQ results that are access decisions (not validation or rate limits)."""


class AccessLogObserver:
    """Forwards every count to ``inner`` and logs access refusals of one connection."""

    def __init__(self, inner: Observer, ip: str) -> None:
        self._inner = inner
        self._ip = ip

    def _log(self, stage: str, reason: str, **extra: object) -> None:
        fields = {"audit": AUDIT_TAG, "stage": stage, "reason": reason, "ip": self._ip}
        log.info(f"{stage} refused: {reason}", extra={**fields, **extra})

    def message(self, command: str) -> None:
        """Count one client message."""
        self._inner.message(command)

    def event_result(self, kind: int, result: str) -> None:
        """Count one EVENT outcome; log it when access was refused."""
        self._inner.event_result(kind, result)
        if result in ACCESS_REASONS:
            self._log("event", result, kind=kind)

    def auth_failure(self, reason: str) -> None:
        """Count and log one failed NIP-42 AUTH."""
        self._inner.auth_failure(reason)
        self._log("auth", reason)

    def rate_limited(self, name: str) -> None:
        """Count one rate-limited message."""
        self._inner.rate_limited(name)

    def req_rejected(self, reason: str) -> None:
        """Count one refused REQ or COUNT; log it when access was refused."""
        self._inner.req_rejected(reason)
        if reason in ACCESS_REASONS:
            self._log("req", reason)
