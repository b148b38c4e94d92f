"""The REST API in the emergency modes obeys them exactly as the WebSocket side does (R-C3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import StartRelay
from tests.relay.test_http_api import MEMBER, api_relay, authed, base, seed_wraps
from tests.support.http import http_request
from tests.support.nip98 import call

MESSAGE = "back at 14:00 UTC"


async def test_read_only_rest_reads_answer_like_the_websocket_reads(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Read-only: an EVENT is blocked, and the REST API serves the same messages a REQ does."""
    running = await api_relay(start_relay, tmp_path, limitation={"read_only": True})
    wraps = await seed_wraps(running, MEMBER, 3)
    client = await authed(running, MEMBER)
    wrap = wraps[0]
    ok = await client.publish(MEMBER.sign(1, "write"))
    assert ok[2:] == [False, "blocked: relay is read-only for maintenance"]
    events, end = await client.req("s", {"kinds": [1059], "#p": [MEMBER.pubkey]})
    assert end == ["EOSE", "s"]
    status, body = await call(base(running), MEMBER, "POST", "/messages/missed", {})
    assert status == 200
    assert sorted(m["id"] for m in body["messages"]) == sorted(e["id"] for e in events)
    assert wrap.id in {m["id"] for m in body["messages"]} and body["count"] == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/messages/missed", {}),
        ("POST", "/messages/group", {"group_id": "g"}),
        ("GET", "/groups/g", None),
        ("GET", "/keypackages?owner=" + "a" * 64, None),
        ("GET", "/no-such-route", None),
    ],
)
async def test_maintenance_mode_answers_every_api_request_503_with_the_message(
    start_relay: StartRelay, tmp_path: Path, method: str, path: str, body: object
) -> None:
    """Maintenance: the API refuses with 503 and the configured message, before anything
    else (authentication included), as a new WebSocket gets the NOTICE and is closed."""
    running = await api_relay(
        start_relay,
        tmp_path,
        information={"maintenance": True, "maintenance_message": MESSAGE},
    )
    status, answer = await call(base(running), MEMBER, method, path, body)
    assert (status, answer) == (503, {"error": MESSAGE, "status": "maintenance"})
    unsigned = await http_request(base(running).local + path, method=method)
    assert unsigned.status == 503 and unsigned.json() == {"error": MESSAGE, "status": "maintenance"}
    assert unsigned.headers.get("retry-after") == "300"
    client = await running.client()
    assert await client.recv() == ["NOTICE", MESSAGE]
    with pytest.raises(ConnectionClosed):
        await client.recv()
    health = await http_request(running.http_url + "/health")
    assert health.status == 503 and health.json()["status"] == "maintenance"  # type: ignore[index]
