"""Probes of a running relay over its public URL: ``/health``, the WebSocket, ``/metrics``.

Plain data in, plain data out; the checks and actions decide what the results mean.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from mlsgw.errors import UsageError
from relay.core.bech32 import bech32_decode
from relay.core.event import sign_event


@dataclass(frozen=True)
class HealthProbe:
    """The answer of ``GET <url>/health``."""

    ok: bool
    status_code: int | None
    latency_ms: float
    version: str | None = None
    detail: str = ""


def _join(url: str, path: str) -> str:
    return url.rstrip("/") + path


def probe_health(url: str, timeout: float) -> HealthProbe:
    """``GET <url>/health``: ok when 200 and ``status`` is ``healthy``."""
    started = time.perf_counter()
    code: int | None = None
    try:
        with urllib.request.urlopen(_join(url, "/health"), timeout=timeout) as response:
            code = response.status
            body = response.read()
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return HealthProbe(False, None, elapsed, detail=f"unreachable: {reason}")
    elapsed = (time.perf_counter() - started) * 1000
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    status = document.get("status", "no status")
    version = document.get("version")
    ok = code == 200 and status == "healthy"
    detail = f"HTTP {code}, status {status}"
    if not ok and document:
        failing = {k: v for k, v in document.items() if k in ("store", "bus") and v != "ok"}
        if failing:
            detail += ", " + ", ".join(f"{k} {v}" for k, v in failing.items())
    return HealthProbe(ok, code, elapsed, str(version) if version else None, detail)


def websocket_url(url: str) -> str:
    """``https://h/p`` -> ``wss://h/p``; ``http`` -> ``ws``; ws(s) unchanged."""
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def parse_secret_key(value: str) -> bytes:
    """A 32-byte secret from 64 hex characters or an ``nsec1…`` string."""
    value = value.strip()
    if value.startswith("nsec1"):
        try:
            hrp, data = bech32_decode(value)
        except ValueError as exc:
            raise UsageError(f"probe key: invalid nsec ({exc})") from None
        if hrp == "nsec" and len(data) == 32:
            return data
        raise UsageError("probe key: not a 32-byte nsec")
    try:
        secret = bytes.fromhex(value)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise UsageError("probe key: expected 64 hex characters or nsec1…")
    return secret


@dataclass(frozen=True)
class WebSocketProbe:
    """What the WebSocket probe saw."""

    ok: bool
    detail: str
    authenticated: bool = False
    auth_required: bool = False
    """The relay closed the REQ with ``auth-required:`` (no probe key was given)."""


def probe_websocket(url: str, timeout: float, probe_key: bytes | None = None) -> WebSocketProbe:
    """Connect, AUTH with ``probe_key`` when given (NIP-42), ``REQ limit 1`` -> ``EOSE``."""
    ws_url = websocket_url(url)
    deadline = time.monotonic() + timeout

    def receive(ws: ClientConnection) -> list[object]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        frame = ws.recv(timeout=remaining)
        message = json.loads(frame)
        if not isinstance(message, list) or not message:
            raise ValueError(f"unexpected frame {frame!r:.80}")
        return message

    authenticated = False
    try:
        with connect(ws_url, open_timeout=timeout, close_timeout=1) as ws:
            if probe_key is not None:
                message = receive(ws)
                while message[0] != "AUTH":
                    message = receive(ws)
                event = sign_event(
                    probe_key,
                    kind=22242,
                    tags=[["relay", ws_url], ["challenge", str(message[1])]],
                    created_at=int(time.time()),
                )
                ws.send('["AUTH",' + event.raw.decode() + "]")
                message = receive(ws)
                while not (message[0] == "OK" and message[1] == event.id):
                    message = receive(ws)
                if message[2] is not True:
                    return WebSocketProbe(False, f"probe key rejected: {message[3]}")
                authenticated = True
            ws.send(json.dumps(["REQ", "mlsgw-healthcheck", {"limit": 1}]))
            message = receive(ws)
            while message[0] not in ("EOSE", "CLOSED"):
                message = receive(ws)
            if message[0] == "CLOSED":
                reason = str(message[2]) if len(message) > 2 else ""
                return WebSocketProbe(
                    False,
                    f"REQ closed: {reason}",
                    authenticated,
                    auth_required=reason.startswith("auth-required:"),
                )
            ws.send(json.dumps(["CLOSE", "mlsgw-healthcheck"]))
    except TimeoutError:
        return WebSocketProbe(False, f"no EOSE within {timeout:g} s", authenticated)
    except (OSError, WebSocketException, ValueError, IndexError) as exc:
        return WebSocketProbe(False, f"{type(exc).__name__}: {exc}", authenticated)
    auth = ", authenticated with the probe key" if authenticated else ""
    return WebSocketProbe(True, f"REQ answered with EOSE{auth}", authenticated)


@dataclass(frozen=True)
class RelayMetrics:
    """Figures from the relay's own ``/metrics``."""

    events: int
    errors: int
    store_p95_ms: float | None
    connections: float | None

    @property
    def error_ratio(self) -> float | None:
        """EVENTs that failed with ``error:`` / all EVENTs."""
        return self.errors / self.events if self.events else None


def scrape_metrics(url: str, key: str, timeout: float) -> RelayMetrics:
    """``GET <url>/metrics`` with a bearer key; raises ``OSError`` when not served."""
    request = urllib.request.Request(
        _join(url, "/metrics"), headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    events = errors = 0
    connections: float | None = None
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "nostr_relay_events_total":
                events += int(sample.value)
                if sample.labels.get("result") == "error":
                    errors += int(sample.value)
            elif sample.name == "nostr_relay_connections":
                connections = sample.value
            elif sample.name == "nostr_relay_store_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return RelayMetrics(events, errors, _histogram_p95_ms(buckets), connections)


def scrape_sweeps(url: str, key: str, timeout: float) -> dict[str, int]:
    """What the relay's sweeper removed since the instance started, from ``/metrics`` (see
    :func:`sweeps_in`); raises ``OSError`` when not served."""
    request = urllib.request.Request(
        _join(url, "/metrics"), headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return sweeps_in(response.read().decode())


def sweeps_in(text: str) -> dict[str, int]:
    """The sweeper's counts in a Prometheus exposition: ``archive``
    (``mls_gateway_archive_swept_total``) and ``keypackage_<reason>``
    (``mls_gateway_keypackages_swept_total`` by ``reason``)."""
    swept: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mls_gateway_archive_swept_total":
                what = "archive"
            elif sample.name == "mls_gateway_keypackages_swept_total":
                what = f"keypackage_{sample.labels.get('reason', '')}"
            else:
                continue
            swept[what] = swept.get(what, 0) + int(sample.value)
    return swept


def _histogram_p95_ms(buckets: dict[float, float]) -> float | None:
    """The upper bound (ms) of the first cumulative bucket holding 95 % of observations."""
    if not buckets:
        return None
    total = buckets.get(float("inf"), max(buckets.values()))
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= 0.95 * total:
            if bound == float("inf"):  # beyond the largest bucket: report that bound
                break
            return bound * 1000
    finite = [b for b in buckets if b != float("inf")]
    return max(finite) * 1000 if finite else None
