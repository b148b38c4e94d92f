"""NIP-42 authentication: challenges and the checks on a kind-22242 answer (R-A1)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from relay.core.event import Event
from relay.core.reasons import Rejection, auth_required

AUTH_KIND = 22242
AUTH_WINDOW_SECONDS = 600


def new_challenge() -> str:
    """A fresh random challenge (256 bits, hex)."""
    return secrets.token_hex(32)


def _host(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if not parts.hostname:
        return None
    port = parts.port
    default = {"ws": 80, "http": 80, "wss": 443, "https": 443}.get(parts.scheme)
    host = parts.hostname.lower().rstrip(".")
    return host if port is None or port == default else f"{host}:{port}"


def relay_url_matches(tag_url: str, relay_url: str) -> bool:
    """True if the ``relay`` tag names the same host (and non-default port) as ``relay_url``."""
    expected = _host(relay_url)
    return expected is not None and _host(tag_url) == expected


def check_auth_event(
    event: Event, *, challenge: str, relay_url: str | None, now: int
) -> tuple[str, Rejection] | None:
    """Validate an already signature-checked AUTH event against this connection's challenge.

    Returns None when the event authenticates ``event.pubkey``, else a short label
    (for metrics) and an ``auth-required:`` rejection saying what was wrong.
    """
    if event.kind != AUTH_KIND:
        return "kind", auth_required(f"AUTH event must be kind {AUTH_KIND}")
    if abs(event.created_at - now) > AUTH_WINDOW_SECONDS:
        return "stale", auth_required("AUTH event created_at is more than 10 minutes from now")
    if event.first_tag_value("challenge") != challenge:
        return "challenge", auth_required("challenge does not match this connection")
    if relay_url:
        tag = event.first_tag_value("relay")
        if tag is None:
            return "relay", auth_required("AUTH event has no relay tag")
        if not relay_url_matches(tag, relay_url):
            return "relay", auth_required(f"relay tag does not name this relay ({relay_url})")
    return None
