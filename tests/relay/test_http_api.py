"""relay.http_api: the REST API with NIP-98 authentication (R-H3) over real sockets."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.policy import Viewer
from relay.core.reasons import (
    Rejection,
    auth_required,
    blocked,
    error,
    invalid,
    rate_limited,
    restricted,
)
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import http_request
from tests.support.nip98 import Api, auth_event, call, header
from tests.support.nostr import Keys, RelayClient

OWNER, MEMBER, OUTSIDER = Keys(), Keys(), Keys()
G = "api-group"
PUBLIC_URL = "wss://relay.test"


async def api_relay(
    start_relay: StartRelay, tmp_path: Path, **sections: dict[str, Any]
) -> RunningRelay:
    """A relay with the API on, reached on 127.0.0.1 and publicly named PUBLIC_URL."""
    mls = {"enable_api": True, **sections.pop("mls_gateway", {})}
    information = {"relay_url": PUBLIC_URL, **sections.pop("information", {})}
    config = make_config(tmp_path, mls_gateway=mls, information=information, **sections)
    running: RunningRelay = await start_relay(config)
    return running


async def authed(running: RunningRelay, keys: Keys, relay_url: str | None = None) -> RelayClient:
    client = await running.client()
    assert (await client.authenticate(keys, relay_url))[2] is True
    return client


async def with_group(running: RunningRelay, relay_url: str | None = None) -> RelayClient:
    """OWNER bootstraps group G with MEMBER; returns OWNER's connection."""
    oc = await authed(running, OWNER, relay_url)
    bootstrap = OWNER.sign(
        450, "", [["h", G], ["op", "bootstrap"], ["seq", "1"], ["p", MEMBER.pubkey]]
    )
    assert (await oc.publish(bootstrap))[2] is True
    return oc


def base(running: RunningRelay, prefix: str = "/api/v1") -> Api:
    """The API on the socket, and the public base its NIP-98 tokens name."""
    public = running.public_url.replace("wss://", "https://").replace("ws://", "http://")
    return Api(running.http_url + prefix, public.rstrip("/") + prefix)


# --- NIP-98 --------------------------------------------------------------------------------


async def raw_call(
    running: RunningRelay, headers: dict[str, str], body: bytes = b""
) -> tuple[int, Any]:
    method = "POST" if body else "GET"
    path = "/messages/missed" if body else f"/groups/{G}"
    reply = await http_request(
        base(running).local + path, method=method, headers=headers, body=body
    )
    return reply.status, reply.json()


def signed(event: Event) -> dict[str, str]:
    return header(event)


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda url, body: {}, id="missing"),
        pytest.param(lambda url, body: {"Authorization": "Bearer abc"}, id="other-scheme"),
        pytest.param(lambda url, body: {"Authorization": "Nostr %%%not-base64"}, id="bad-base64"),
        pytest.param(
            lambda url, body: {"Authorization": "Nostr " + base64.b64encode(b"[1,2]").decode()},
            id="not-an-event",
        ),
        pytest.param(
            lambda url, body: {"Authorization": "Nostr " + base64.b64encode(b"{oops").decode()},
            id="not-json",
        ),
        pytest.param(
            lambda url, body: signed(auth_event(MEMBER, "GET", url, body, kind=22242)),
            id="wrong-kind",
        ),
        pytest.param(
            lambda url, body: signed(
                auth_event(MEMBER, "GET", url, body, created_at=int(time.time()) - 120)
            ),
            id="stale",
        ),
        pytest.param(
            lambda url, body: signed(
                auth_event(MEMBER, "GET", url, body, created_at=int(time.time()) + 120)
            ),
            id="future",
        ),
        pytest.param(
            lambda url, body: signed(MEMBER.sign(27235, "", [["method", "GET"]])), id="no-u"
        ),
        pytest.param(
            lambda url, body: signed(auth_event(MEMBER, "GET", url + "x", body)), id="wrong-path"
        ),
        pytest.param(
            lambda url, body: signed(
                auth_event(MEMBER, "GET", url.replace("relay.test", "evil.example"), body)
            ),
            id="wrong-host",
        ),
        pytest.param(
            lambda url, body: signed(auth_event(MEMBER, "POST", url, body)), id="wrong-method"
        ),
        pytest.param(
            lambda url, body: signed(auth_event(MEMBER, "GET", "http://[::1/groups", body)),
            id="malformed-u",
        ),
    ],
)
async def test_nip98_failures_are_401(
    start_relay: StartRelay, tmp_path: Path, make_headers: Any
) -> None:
    """Every NIP-98 defect → 401 with a JSON error, and no data."""
    running = await api_relay(start_relay, tmp_path)
    await with_group(running)
    status, body = await raw_call(running, make_headers(base(running).public + f"/groups/{G}", b""))
    assert status == 401 and set(body) == {"error"}, body


async def test_nip98_replayed_authorization_is_401(start_relay: StartRelay, tmp_path: Path) -> None:
    """The same signed authorization event works once; a replay is refused."""
    running = await api_relay(start_relay, tmp_path)
    await with_group(running)
    event = auth_event(MEMBER, "GET", base(running).public + f"/groups/{G}")
    assert (await raw_call(running, header(event)))[0] == 200
    status, body = await raw_call(running, header(event))
    assert status == 401 and body == {"error": "authorization event was already used"}


async def test_nip98_tampered_signature_is_401(start_relay: StartRelay, tmp_path: Path) -> None:
    """An event whose signature does not verify is refused."""
    running = await api_relay(start_relay, tmp_path)
    event = auth_event(MEMBER, "GET", base(running).public + f"/groups/{G}")
    obj = orjson.loads(event.raw)
    obj["sig"] = ("0" if obj["sig"][0] != "0" else "1") + obj["sig"][1:]
    headers = {"Authorization": "Nostr " + base64.b64encode(orjson.dumps(obj)).decode()}
    assert (await raw_call(running, headers))[0] == 401


async def test_nip98_body_needs_the_matching_payload_hash(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With a body, a missing or wrong ``payload`` tag is 401; the right one is accepted."""
    running = await api_relay(start_relay, tmp_path)
    url = base(running).public + "/messages/missed"
    body = orjson.dumps({"since": 0})
    missing = MEMBER.sign(27235, "", [["u", url], ["method", "POST"]])
    wrong = auth_event(MEMBER, "POST", url, b'{"since":1}')
    for event in (missing, wrong):
        assert (await raw_call(running, signed(event), body))[0] == 401
    assert (await raw_call(running, signed(auth_event(MEMBER, "POST", url, body)), body))[0] == 200


async def test_api_without_relay_url_never_trusts_the_host_header(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A relay built without relay_url (config validation refuses that; this bypasses it)
    answers 503 rather than checking tokens against the caller's own Host header."""
    running = await api_relay(start_relay, tmp_path, information={"relay_url": None})
    status, body = await call(running.http_url + "/api/v1", MEMBER, "POST", "/messages/missed", {})
    assert (status, body) == (503, {"error": "the REST API needs information.relay_url"})


async def test_nip98_u_tag_uses_the_configured_public_url(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Behind a proxy, ``u`` must name ``information.relay_url``'s host, not the socket's."""
    running = await api_relay(
        start_relay, tmp_path, information={"relay_url": "wss://relay.example.com"}
    )
    await with_group(running, "wss://relay.example.com")
    path = f"/api/v1/groups/{G}"
    public = auth_event(MEMBER, "GET", "https://relay.example.com" + path)
    local = auth_event(MEMBER, "GET", running.http_url + path)
    reply = await http_request(running.http_url + path, headers=signed(public))
    assert reply.status == 200
    reply = await http_request(running.http_url + path, headers=signed(local))
    assert reply.status == 401


# --- allowlist and blocked keys --------------------------------------------------------------


async def test_allowlist_applies_to_the_api(start_relay: StartRelay, tmp_path: Path) -> None:
    """A valid NIP-98 caller not on the allowlist → 403; a listed one is served."""
    running = await api_relay(
        start_relay, tmp_path, auth={"pubkey_whitelist": (OWNER.pubkey, MEMBER.pubkey)}
    )
    await with_group(running)
    status, body = await call(base(running), OUTSIDER, "POST", "/messages/missed", {})
    assert status == 403 and "allowlist" in body["error"]
    assert (await call(base(running), MEMBER, "GET", f"/groups/{G}"))[0] == 200


async def test_blocked_pubkey_is_403(start_relay: StartRelay, tmp_path: Path) -> None:
    """A blacklisted pubkey may not use the API."""
    running = await api_relay(start_relay, tmp_path, auth={"pubkey_blacklist": (OUTSIDER.pubkey,)})
    assert (await call(base(running), OUTSIDER, "POST", "/messages/missed", {}))[0] == 403


async def test_api_answers_with_the_websocket_rules_own_reasons(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """The allowlist and block refusals are the policy's REQ rules, word for word, as a
    WebSocket REQ gets them in its CLOSED."""
    running = await api_relay(
        start_relay,
        tmp_path,
        auth={"pubkey_whitelist": (MEMBER.pubkey,), "pubkey_blacklist": (OWNER.pubkey,)},
    )
    status, body = await call(base(running), OUTSIDER, "POST", "/messages/missed", {})
    assert (status, body) == (403, {"error": "restricted: pubkey is not on this relay's allowlist"})
    status, body = await call(base(running), OWNER, "GET", f"/groups/{G}")
    assert (status, body) == (403, {"error": "blocked: pubkey is not allowed on this relay"})


async def test_ip_lists_apply_to_the_api_through_the_rule_list(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """An address outside the IP lists is refused on every route with the rule's reason."""
    running = await api_relay(start_relay, tmp_path, auth={"ip_blacklist": ("127.0.0.0/8",)})
    for method, path, body in (
        ("GET", f"/groups/{G}", None),
        ("POST", "/messages/missed", {}),
        ("POST", "/messages/group", {"group_id": G}),
        ("GET", f"/keypackages?owner={OWNER.pubkey}", None),
    ):
        status, reply = await call(base(running), MEMBER, method, path, body)
        assert (status, reply) == (403, {"error": "blocked: your address may not use this relay"})


@pytest.mark.parametrize(
    ("rejection", "status"),
    [
        (restricted("relay is in lockdown"), 403),
        (blocked("maintenance"), 403),
        (auth_required("sign in again"), 401),
        (rate_limited("too many reads"), 429),
        (invalid("bad filter"), 400),
        (error("store is down"), 503),
    ],
)
async def test_any_req_rule_covers_the_api_with_a_status_per_reason(
    start_relay: StartRelay, tmp_path: Path, rejection: Rejection, status: int
) -> None:
    """A rule added to the policy's REQ list (lockdown, maintenance, …) refuses REST
    requests too, before any data is read; its reason prefix picks the HTTP status."""
    running = await api_relay(start_relay, tmp_path)
    await with_group(running)

    def rule(filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        return rejection

    policy = running.relay.policy
    running.relay.policy = dataclasses.replace(policy, req_rules=(*policy.req_rules, rule))
    for method, path, body in (
        ("GET", f"/groups/{G}", None),
        ("POST", "/messages/missed", {}),
        ("POST", "/messages/group", {"group_id": G}),
        ("GET", f"/keypackages?owner={OWNER.pubkey}", None),
    ):
        reply = await call(base(running), MEMBER, method, path, body)
        assert reply == (status, {"error": rejection.message()}), path


# --- groups ----------------------------------------------------------------------------------


async def test_group_endpoint_is_for_members_and_admins(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """GET /groups/{id}: member and owner 200 with the registry entry; an outsider gets
    the same 404 as for a group that does not exist (no probing which groups exist)."""
    running = await api_relay(start_relay, tmp_path)
    await with_group(running)
    for keys in (OWNER, MEMBER):
        status, body = await call(base(running), keys, "GET", f"/groups/{G}")
        assert status == 200
        assert body["owner"] == OWNER.pubkey and MEMBER.pubkey in body["members"]
    hidden = await call(base(running), OUTSIDER, "GET", f"/groups/{G}")
    missing = await call(base(running), MEMBER, "GET", "/groups/nope")
    assert hidden == missing == (404, {"error": "group not found"})


async def test_group_messages_are_for_members(start_relay: StartRelay, tmp_path: Path) -> None:
    """POST /messages/group: 200 for a member, 404 for an outsider as for no such group,
    400 without a group id."""
    running = await api_relay(start_relay, tmp_path)
    oc = await with_group(running)
    message = Keys().sign(445, "x", [["h", G]])
    assert (await oc.publish(message))[2] is True
    status, body = await call(base(running), MEMBER, "POST", "/messages/group", {"group_id": G})
    assert status == 200 and [m["id"] for m in body["messages"]] == [message.id]
    assert body["messages"][0] == message.to_dict()
    group_body = {"group_id": G}
    hidden = await call(base(running), OUTSIDER, "POST", "/messages/group", group_body)
    unknown = {"group_id": "nope"}
    missing = await call(base(running), MEMBER, "POST", "/messages/group", unknown)
    assert hidden == missing == (404, {"error": "group not found"})
    assert (await call(base(running), MEMBER, "POST", "/messages/group", {}))[0] == 400


# --- limits ----------------------------------------------------------------------------------


async def seed_wraps(running: RunningRelay, recipient: Keys, n: int) -> list[Event]:
    """``n`` gift wraps to ``recipient`` stored directly (one second apart, oldest first)."""
    start = int(time.time()) - n - 10
    throwaway = Keys()
    events = [
        throwaway.sign(1059, f"w{i}", [["p", recipient.pubkey]], created_at=start + i)
        for i in range(n)
    ]
    for event in events:
        await running.relay.store.save(event, int(time.time()))
    return events


async def test_missed_messages_default_limit_is_100_with_has_more(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """No limit: the 100 oldest, ``has_more`` true; ``since`` pages on."""
    running = await api_relay(start_relay, tmp_path)
    wraps = await seed_wraps(running, MEMBER, 120)
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", {})
    assert status == 200 and body["count"] == 100 and body["has_more"] is True
    assert [m["id"] for m in body["messages"]] == [e.id for e in wraps[:100]]
    since = {"since": wraps[100].created_at}
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", since)
    assert body["count"] == 20 and body["has_more"] is False


async def test_missed_messages_limit_is_capped_at_500(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """``limit`` above 500 serves 500; exactly the remaining count → has_more false."""
    running = await api_relay(start_relay, tmp_path)
    await seed_wraps(running, MEMBER, 501)
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", {"limit": 10000})
    assert status == 200 and body["count"] == 500 and body["has_more"] is True
    since = {"since": body["messages"][-1]["created_at"] + 1, "limit": 1}
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", since)
    assert body["count"] == 1 and body["has_more"] is False


async def test_missed_messages_are_only_the_callers(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Gift wraps and DMs to someone else never appear in the caller's missed messages."""
    running = await api_relay(start_relay, tmp_path)
    await seed_wraps(running, OUTSIDER, 3)
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", {})
    assert status == 200 and body == {"messages": [], "count": 0, "has_more": False}


@pytest.mark.parametrize(
    "body",
    [
        {"limit": -1},
        {"limit": "5"},
        {"since": 1.5},
        {"since": True},
        {"since": 2**63},
        {"limit": 2**64 - 1},
        [1, 2],
    ],
)
async def test_bad_request_bodies_are_400(
    start_relay: StartRelay, tmp_path: Path, body: Any
) -> None:
    """Malformed ``since``/``limit`` (including beyond int64) and non-object bodies → 400."""
    running = await api_relay(start_relay, tmp_path)
    status, reply = await call(base(running), MEMBER, "POST", "/messages/missed", body)
    assert status == 400 and set(reply) == {"error"}


async def test_non_json_body_is_400(start_relay: StartRelay, tmp_path: Path) -> None:
    """A correctly signed body that is not JSON → 400."""
    running = await api_relay(start_relay, tmp_path)
    body = b"not json"
    event = auth_event(MEMBER, "POST", base(running).public + "/messages/missed", body)
    assert (await raw_call(running, signed(event), body))[0] == 400


# --- key packages ----------------------------------------------------------------------------


async def test_keypackages_endpoint_consumes_like_a_fetch(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """GET /keypackages?owner=: oldest first, consumed, the last one re-served."""
    running = await api_relay(start_relay, tmp_path)
    oc = await authed(running, OWNER)
    now = int(time.time())
    kps = [OWNER.sign(443, f"{i:04x}", [], created_at=now - 10 + i) for i in range(2)]
    for event in kps:
        assert (await oc.publish(event))[2] is True
    path = f"/keypackages?owner={OWNER.pubkey}"
    served = []
    for _ in range(3):
        status, body = await call(base(running), MEMBER, "GET", path)
        assert status == 200
        served.append([k["id"] for k in body["keypackages"]])
    assert served == [[kps[0].id], [kps[1].id], [kps[1].id]]
    status, body = await call(base(running), MEMBER, "GET", path)
    assert body["keypackages"][0] == kps[1].to_dict()


async def test_keypackages_endpoint_rate_limit_is_429(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Over keypackage_fetch_rate per requester→author → 429 rate-limited. Without an
    allowlist NIP-98 keys cost nothing, so REST callers from one address share a budget;
    another author is still served."""
    running = await api_relay(start_relay, tmp_path, mls_gateway={"keypackage_fetch_rate": 1})
    oc = await authed(running, OWNER)
    assert (await oc.publish(OWNER.sign(443, "0102")))[2] is True
    path = f"/keypackages?owner={OWNER.pubkey}"
    assert (await call(base(running), MEMBER, "GET", path))[0] == 200
    status, body = await call(base(running), MEMBER, "GET", path)
    assert status == 429 and body["error"].startswith("rate-limited: ")
    assert (await call(base(running), OUTSIDER, "GET", path))[0] == 429
    mc = await authed(running, MEMBER)
    assert (await mc.publish(MEMBER.sign(443, "0304")))[2] is True
    assert (await call(base(running), OUTSIDER, "GET", f"/keypackages?owner={MEMBER.pubkey}"))[
        0
    ] == 200


async def test_keypackage_fetch_limit_is_shared_by_rest_and_websocket_per_listed_identity(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With an allowlist a listed user's fetch budget is one, whether spent over REST or
    a WebSocket; another listed user keeps their own."""
    running = await api_relay(
        start_relay,
        tmp_path,
        auth={"pubkey_whitelist": (OWNER.pubkey, MEMBER.pubkey, OUTSIDER.pubkey)},
        mls_gateway={"keypackage_fetch_rate": 1},
    )
    oc = await authed(running, OWNER)
    for i in range(3):
        assert (await oc.publish(OWNER.sign(443, f"{i:04x}")))[2] is True
    mc = await authed(running, MEMBER)
    events, end = await mc.req("kp", {"kinds": [443], "authors": [OWNER.pubkey]})
    assert len(events) == 1 and end[0] == "EOSE"
    path = f"/keypackages?owner={OWNER.pubkey}"
    assert (await call(base(running), MEMBER, "GET", path))[0] == 429
    assert (await call(base(running), OUTSIDER, "GET", path))[0] == 200


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?owner=",
        "?owner=xyz",
        "?owner=" + "AB" * 32,
        "?owner=" + "ab" * 32 + "&owner=" + "cd" * 32,
    ],
)
async def test_keypackages_endpoint_needs_one_hex_owner(
    start_relay: StartRelay, tmp_path: Path, query: str
) -> None:
    """A missing, malformed or repeated ``owner`` → 400."""
    running = await api_relay(start_relay, tmp_path)
    assert (await call(base(running), MEMBER, "GET", "/keypackages" + query))[0] == 400


# --- routing ---------------------------------------------------------------------------------


async def test_unknown_route_is_404_and_wrong_method_is_405(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """JSON errors for routing mistakes."""
    running = await api_relay(start_relay, tmp_path)
    assert (await call(base(running), MEMBER, "GET", "/nothing"))[0] == 404
    assert (await call(base(running), MEMBER, "GET", "/messages/missed"))[0] == 405
    assert (await call(base(running), MEMBER, "POST", f"/groups/{G}", {}))[0] == 405


async def test_api_is_off_unless_enabled(start_relay: StartRelay, tmp_path: Path) -> None:
    """Without ``enable_api`` the routes do not exist."""
    running = await start_relay(make_config(tmp_path))
    assert (await call(running.http_url + "/api/v1", MEMBER, "POST", "/messages/missed", {}))[
        0
    ] == 404


async def test_api_prefix_is_configurable(start_relay: StartRelay, tmp_path: Path) -> None:
    """``api_prefix`` moves the routes."""
    running = await api_relay(start_relay, tmp_path, mls_gateway={"api_prefix": "/mls"})
    status, _ = await call(base(running, "/mls"), MEMBER, "POST", "/messages/missed", {})
    assert status == 200
    assert (await call(base(running), MEMBER, "POST", "/messages/missed", {}))[0] == 404
