"""The MLS gateway REST API (R-H3) under ``mls_gateway.api_prefix``.

Every request carries a NIP-98 ``Authorization: Nostr <base64 event>`` header and is
subject to the same rules as the WebSocket: the caller is a
:class:`~relay.core.policy.Viewer` authenticated as the signer, every request meets the
policy's REQ rules for the filters it reads (their reason prefix picks the HTTP status),
and results pass the relay's read rules. Errors are ``{"error": …}`` with 400, 401, 403,
404, 405, 429 or 503.

The emergency modes apply as on the WebSocket side: in maintenance mode every request is
answered 503 with the configured message before anything else (a new WebSocket connection
gets that message as a NOTICE and is closed); read-only mode refuses writes only, and the API
serves reads, so it keeps answering exactly as a REQ does.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

import orjson

from relay.core.auth import check_http_auth
from relay.core.event import Event, parse_event
from relay.core.filters import MAX_INT64, Filter
from relay.core.policy import Viewer
from relay.core.reasons import Reason, Rejection
from relay.http_messages import HttpRequest, HttpResponse, json_response
from relay.mls import kinds
from relay.mls.groups import GROUP_ID, GroupState
from relay.store.base import StoreUnavailable

if TYPE_CHECKING:
    from relay.app import Relay

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# In a path only URL-safe group ids; a JSON body takes any relay.mls.groups.GROUP_ID.
_PATH_GROUP_ID = re.compile(r"[A-Za-z0-9._~:-]{1,256}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
MAINTENANCE_RETRY_AFTER = 300
"""Seconds a client is asked to wait in maintenance mode (the WebSocket's close code 1013
says "try again later" without a time)."""


class ApiError(Exception):
    """An error answer: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _authenticate(relay: Relay, request: HttpRequest) -> Viewer:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("nostr "):
        raise ApiError(401, "missing NIP-98 authorization (Authorization: Nostr <base64 event>)")
    try:
        obj = orjson.loads(base64.b64decode(header[6:].strip(), validate=True))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise ApiError(401, "authorization is not a base64-encoded JSON event") from None
    event = parse_event(obj)
    if isinstance(event, Rejection):
        raise ApiError(401, f"authorization event: {event.detail}")
    host = relay.config.information.relay_url
    if not host:  # refused by config validation; never fall back to the forgeable Host
        raise ApiError(503, "the REST API needs information.relay_url")
    now = int(relay.clock())
    problem = check_http_auth(
        event,
        method=request.method,
        host=host,
        target=request.target,
        body=request.body,
        now=now,
    )
    if problem is not None:
        raise ApiError(401, problem)
    if not await relay.gateway.http_auth_replays.first_use(event.sig, event.created_at, now):
        raise ApiError(401, "authorization event was already used")
    return Viewer(0, request.client_ip, frozenset({event.pubkey}))


# What each NIP-01 reason prefix means in HTTP; anything else is a refusal (403).
_STATUS_BY_REASON = {
    Reason.AUTH_REQUIRED: 401,
    Reason.RESTRICTED: 403,
    Reason.BLOCKED: 403,
    Reason.RATE_LIMITED: 429,
    Reason.INVALID: 400,
    Reason.ERROR: 503,
}


def status_for(rejection: Rejection) -> int:
    """The HTTP status that answers a rule's rejection (by its reason prefix)."""
    return _STATUS_BY_REASON.get(rejection.reason, 403)


def _refused(rejection: Rejection) -> ApiError:
    return ApiError(status_for(rejection), rejection.message())


def _check_read(relay: Relay, viewer: Viewer, filters: list[Filter]) -> None:
    """The policy's REQ rules, exactly as a WebSocket REQ for ``filters`` meets them, so
    every access rule (lists, blocks, read-only, future ones) covers REST too."""
    rejection = relay.policy.reject_req(filters, viewer)
    if rejection is not None:
        raise _refused(rejection)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(400, "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    # Beyond int64 is the client's error (400), not a store failure (503).
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        raise ApiError(400, f"{name} must be a non-negative integer")
    return value


def _page(relay: Relay, viewer: Viewer, events: list[Event], limit: int) -> HttpResponse:
    readable = [e for e in events if relay.policy.can_read(e, viewer)]
    has_more = len(readable) > limit
    page = readable[:limit]
    return json_response(
        200,
        {"messages": [e.to_dict() for e in page], "count": len(page), "has_more": has_more},
    )


async def _messages(relay: Relay, filt: Filter) -> list[Event]:
    return await relay.store.query([filt], int(relay.clock()), oldest_first=True)


def _group_filter(group_id: str) -> Filter:
    return Filter(kinds=frozenset(kinds.GROUP_KINDS), tags=(("h", frozenset({group_id})),))


def _visible_group(relay: Relay, viewer: Viewer, group_id: str) -> GroupState:
    # One answer for "no such group" and "not yours to see": a 403 would tell a
    # stranger which group ids exist.
    state = relay.gateway.directory.get(group_id)
    if state is None or (
        relay.gateway.enforce and not relay.gateway.directory.members(group_id) & viewer.pubkeys
    ):
        raise ApiError(404, "group not found")
    return state


async def _group(relay: Relay, viewer: Viewer, group_id: str) -> HttpResponse:
    _check_read(relay, viewer, [_group_filter(group_id)])
    return json_response(200, _visible_group(relay, viewer, group_id).to_json())


async def _keypackages(relay: Relay, viewer: Viewer, request: HttpRequest) -> HttpResponse:
    owners = request.query.get("owner", [])
    if len(owners) != 1 or not _HEX64.match(owners[0]):
        raise ApiError(400, "owner must be one 64-character hex pubkey")
    filt = Filter(kinds=frozenset({kinds.KEYPACKAGE}), authors=frozenset(owners))
    _check_read(relay, viewer, [filt])
    result = await relay.gateway.query(viewer, [filt], int(relay.clock()))
    if isinstance(result, Rejection):
        raise _refused(result)
    events = [e for e in result if relay.policy.can_read(e, viewer)]
    return json_response(200, {"keypackages": [e.to_dict() for e in events], "count": len(events)})


async def _missed(relay: Relay, viewer: Viewer, request: HttpRequest) -> HttpResponse:
    body = _json_body(request)
    since = _int_field(body, "since", 0)
    limit = min(_int_field(body, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    filt = Filter(
        kinds=frozenset(kinds.ADDRESSED),
        tags=(("p", frozenset(viewer.pubkeys)),),
        since=since,
        limit=limit + 1,
    )
    _check_read(relay, viewer, [filt])
    return _page(relay, viewer, await _messages(relay, filt), limit)


async def _group_messages(relay: Relay, viewer: Viewer, request: HttpRequest) -> HttpResponse:
    body = _json_body(request)
    group_id = body.get("group_id")
    if not isinstance(group_id, str) or not GROUP_ID.match(group_id):
        raise ApiError(400, "group_id must be 1 to 256 printable ASCII characters, no spaces")
    since = _int_field(body, "since", 0)
    limit = min(_int_field(body, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    filt = Filter(
        kinds=frozenset({kinds.GROUP_MESSAGE}),
        tags=(("h", frozenset({group_id})),),
        since=since,
        limit=limit + 1,
    )
    _check_read(relay, viewer, [filt])
    directory = relay.gateway.directory
    if directory.get(group_id) is None or not directory.open_to_named(group_id):
        _visible_group(relay, viewer, group_id)  # 404 before any data
    # The request names the group: the id of a roster-less group is its capability (R-M11).
    return _page(relay, viewer.asking([filt]), await _messages(relay, filt), limit)


def maintenance_response(relay: Relay) -> HttpResponse | None:
    """503 with the maintenance message while ``information.maintenance`` is on, else None."""
    information = relay.config.information
    if not information.maintenance:
        return None
    return HttpResponse(
        503,
        orjson.dumps({"error": information.maintenance_message, "status": "maintenance"}),
        headers=(("Retry-After", str(MAINTENANCE_RETRY_AFTER)),),
    )


async def handle_api(relay: Relay, request: HttpRequest, prefix: str) -> HttpResponse:
    """Serve one request whose path starts with the API prefix (503 in maintenance mode)."""
    closed = maintenance_response(relay)
    if closed is not None:
        return closed
    route = request.path[len(prefix.rstrip("/")) :]
    routes = {
        "/keypackages": ("GET", _keypackages),
        "/messages/missed": ("POST", _missed),
        "/messages/group": ("POST", _group_messages),
    }
    try:
        if route.startswith("/groups/") and len(route) > len("/groups/"):
            if request.method != "GET":
                raise ApiError(405, "use GET")
            viewer = await _authenticate(relay, request)
            group_id = route[len("/groups/") :]
            if not _PATH_GROUP_ID.match(group_id):
                raise ApiError(400, "malformed group id")
            return await _group(relay, viewer, group_id)
        if route not in routes:
            raise ApiError(404, "not found")
        method, handler = routes[route]
        if request.method != method:
            raise ApiError(405, f"use {method}")
        viewer = await _authenticate(relay, request)
        return await handler(relay, viewer, request)
    except ApiError as exc:
        return json_response(exc.status, {"error": exc.message})
    except StoreUnavailable:
        return json_response(503, {"error": "store unavailable, retry"})
