"""Plain HTTP on the relay's port: ``/health`` (R-H1), NIP-11 (R-P6), ``/metrics`` (R-H2).

Requests arrive parsed (:class:`HttpRequest`); handlers return an
:class:`HttpResponse`. The server does the socket work.
"""

from __future__ import annotations

import hmac

import orjson

from relay.app import Relay
from relay.http_api import handle_api
from relay.http_messages import CORS_HEADERS, HttpRequest, HttpResponse, json_response

SUPPORTED_NIPS = [1, 9, 11, 40, 42, 45, 70]


def relay_information(relay: Relay) -> dict[str, object]:
    """The NIP-11 relay information document; a ``created_at`` bound whose limit is 0
    (no limit) is left out of ``limitation``."""
    cfg = relay.config
    info = cfg.information
    lim = cfg.limitation
    allowlist = bool(cfg.auth.allowed_pubkeys)
    limitation: dict[str, object] = {
        "max_message_length": lim.max_message_length,
        "max_subscriptions": lim.max_subscriptions,
        "max_filters": lim.max_filters,
        "max_limit": lim.max_limit,
        "max_subid_length": lim.max_subid_length,
        "max_event_tags": lim.max_event_tags,
        "min_pow_difficulty": 0,
        "auth_required": allowlist,
        "payment_required": False,
        "restricted_writes": allowlist or lim.read_only,
    }
    # 0 means no limit (as in rnostr): that bound is left out rather than advertised as 0.
    if lim.max_event_time_older_than_now:
        limitation["created_at_lower_limit"] = lim.max_event_time_older_than_now
    if lim.max_event_time_newer_than_now:
        limitation["created_at_upper_limit"] = lim.max_event_time_newer_than_now
    doc: dict[str, object] = {
        "name": info.name,
        "description": info.description,
        "pubkey": info.pubkey,
        "contact": info.contact,
        "software": info.software,
        "version": relay.version,
        "supported_nips": SUPPORTED_NIPS,
        "limitation": limitation,
    }
    if info.icon:
        doc["icon"] = info.icon
    return {k: v for k, v in doc.items() if v is not None}


def _metrics(relay: Relay, request: HttpRequest) -> HttpResponse:
    metrics = relay.config.metrics
    if not metrics.enabled:
        return json_response(404, {"error": "not found"})
    if metrics.auth:
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else None
        if token is None and request.query.get("auth"):
            token = request.query["auth"][0]
        if token is None or not hmac.compare_digest(token.encode(), metrics.auth.encode()):
            return HttpResponse(
                401,
                b'{"error":"metrics require a valid key (Authorization: Bearer or ?auth=)"}',
                headers=(("WWW-Authenticate", 'Bearer realm="metrics"'),),
            )
    return HttpResponse(200, relay.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")


READ_ONLY_PATHS = frozenset({"/", "/health", "/metrics"})
"""Paths that answer GET and HEAD only: any other method gets 405 with ``Allow`` (``/metrics``
only while metrics are enabled: otherwise it does not exist)."""


async def handle_http(relay: Relay, request: HttpRequest) -> HttpResponse:
    """Route one plain HTTP request (anything that is not a WebSocket upgrade)."""
    path, method = request.path, request.method
    if method == "OPTIONS":
        return HttpResponse(204, b"", "text/plain", CORS_HEADERS)
    if path == "/health" and method in ("GET", "HEAD"):
        document = await relay.health()
        return json_response(200 if document["status"] == "healthy" else 503, document)
    if path == "/metrics" and method in ("GET", "HEAD"):
        return _metrics(relay, request)
    api = relay.config.mls_gateway
    if api.enable_api and (path + "/").startswith(api.api_prefix.rstrip("/") + "/"):
        return await handle_api(relay, request, api.api_prefix)
    if path == "/" and method in ("GET", "HEAD"):
        if "application/nostr+json" in request.headers.get("accept", ""):
            return HttpResponse(
                200, orjson.dumps(relay_information(relay)), "application/nostr+json", CORS_HEADERS
            )
        redirect = relay.config.network.index_redirect_to
        if redirect:
            return HttpResponse(302, b"", "text/plain; charset=utf-8", (("Location", redirect),))
        return HttpResponse(
            200,
            b"This is a Nostr relay. Connect with a Nostr client over WebSocket.\n",
            "text/plain; charset=utf-8",
            CORS_HEADERS,
        )
    exists = path in READ_ONLY_PATHS and (path != "/metrics" or relay.config.metrics.enabled)
    if exists or method not in ("GET", "HEAD", "POST"):
        return HttpResponse(
            405,
            orjson.dumps({"error": f"method {method} not allowed"}),
            "application/json",
            (("Allow", "GET, HEAD, OPTIONS"),),
        )
    return json_response(404, {"error": "not found"})
