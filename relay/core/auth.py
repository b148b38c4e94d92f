"""NIP-42 (R-A1) and NIP-98 (R-H3) authentication checks on already-verified events."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlsplit

from relay.core.event import Event
from relay.core.reasons import Rejection, auth_required

AUTH_KIND = 22242
AUTH_WINDOW_SECONDS = 600


def new_challenge() -> str:
    """A fresh random challenge (256 bits, hex)."""
    return secrets.token_hex(32)


def _url_parts(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, the port ``url`` gives explicitly or None); None when malformed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower().rstrip("."), port


def _host(url: str) -> str | None:
    parsed = _url_parts(url)
    if parsed is None:
        return None
    scheme, host, port = parsed
    default = {"ws": 80, "http": 80, "wss": 443, "https": 443}.get(scheme)
    return host if port is None or port == default else f"{host}:{port}"


def relay_url_matches(tag_url: str, relay_url: str) -> bool:
    """True if the ``relay`` tag names the host of ``relay_url``. The tag's port counts
    only when ``relay_url`` gives one explicitly (then a non-default port must be the
    same); otherwise any port matches, since clients put the URL they dialled, port
    included, into the tag."""
    expected, given = _url_parts(relay_url), _url_parts(tag_url)
    if expected is None or given is None:
        return False
    if expected[2] is not None:
        return _host(tag_url) == _host(relay_url)
    return given[1] == expected[1]


def _host_any_scheme(url: str) -> str | None:
    """host[:port] with 80 and 443 both treated as default: behind a TLS-terminating proxy
    the relay cannot tell whether the client dialled ws:// or wss://."""
    parsed = _url_parts(url)
    if parsed is None:
        return None
    _, host, port = parsed
    return host if port is None or port in (80, 443) else f"{host}:{port}"


def relay_tag_matches_host(tag_url: str, host_header: str) -> bool:
    """True if the ``relay`` tag names the host (and port) the WebSocket request was sent
    to, as given by its ``Host`` header, whatever the scheme of either."""
    if not host_header or any(c in host_header for c in "/?#@ "):
        return False
    expected = _host_any_scheme(f"//{host_header}")
    return expected is not None and _host_any_scheme(tag_url) == expected


def check_auth_event(
    event: Event,
    *,
    challenge: str,
    relay_url: str | None,
    now: int,
    request_host: str | None = None,
) -> tuple[str, Rejection] | None:
    """Validate an already signature-checked AUTH event against this connection's challenge.

    The ``relay`` tag must name ``relay_url`` when it is configured, else the host of the
    WebSocket request (``request_host``, its ``Host`` header; empty when it had none,
    which fails closed), so an AUTH signed for another relay never authenticates here.
    With neither known (no request to compare with) the tag is not checked. Returns None
    when the event authenticates ``event.pubkey``, else a short label (for metrics) and
    an ``auth-required:`` rejection saying what was wrong.
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
    elif request_host is not None:
        tag = event.first_tag_value("relay")
        if tag is None:
            return "relay", auth_required("AUTH event has no relay tag")
        if not request_host:
            return "relay", auth_required("cannot check the relay tag: the request had no Host")
        if not relay_tag_matches_host(tag, request_host):
            return "relay", auth_required(
                f"relay tag does not name this relay (host {request_host[:256]})"
            )
    return None


HTTP_AUTH_KIND = 27235
HTTP_AUTH_WINDOW_SECONDS = 60


def _target_of(url: str) -> tuple[str | None, str]:
    """(host[:port], path?query) of an absolute URL; (None, "") when it is malformed."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None, ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _host(url), target


def check_http_auth(
    event: Event,
    *,
    method: str,
    host: str,
    target: str,
    body: bytes,
    now: int,
) -> str | None:
    """NIP-98: why a signature-checked kind-27235 event does not authorise this request,
    or None if it does. ``host`` is the public host the request was sent to."""
    if event.kind != HTTP_AUTH_KIND:
        return f"authorization event must be kind {HTTP_AUTH_KIND}"
    if abs(event.created_at - now) > HTTP_AUTH_WINDOW_SECONDS:
        return "authorization event created_at is more than 60 seconds from now"
    url = event.first_tag_value("u")
    if url is None:
        return "authorization event has no u tag"
    url_host, url_target = _target_of(url)
    expected_host = _host(host if "//" in host else f"http://{host}")
    if url_host is None or url_host != expected_host or url_target != target:
        return "u tag does not match the request URL"
    if (event.first_tag_value("method") or "").upper() != method.upper():
        return "method tag does not match the request method"
    if body:
        payload = event.first_tag_value("payload")
        if payload is None or payload.lower() != hashlib.sha256(body).hexdigest():
            return "payload tag does not match the request body"
    return None


class ReplayGuard:
    """Remembers NIP-98 authorization events so each one authorises a single request.

    An event can only pass the ±60 s window for two minutes, so it is forgotten after
    that; memory stays bounded by the request rate.
    """

    def __init__(self, window: int = HTTP_AUTH_WINDOW_SECONDS) -> None:
        self.window = window
        self._seen: dict[str, int] = {}

    def first_use(self, sig: str, created_at: int, now: int) -> bool:
        """True the first time a signed event (by its signature) is presented, False on
        every replay. Keyed by signature, not id: two identical requests signed in the
        same second share an id but not a signature (BIP-340 aux randomness)."""
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest]
        if sig in self._seen:
            return False
        self._seen[sig] = max(created_at, now) + self.window + 1
        return True
