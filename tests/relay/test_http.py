"""relay.http on the relay's port: /health (R-H1), NIP-11 (R-P6), /metrics (R-H2)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relay import __version__
from relay.store.guarded import GuardedStore
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.http import HttpReply, http_request
from tests.support.nostr import Keys
from tests.support.stores import FlakyStore

ALICE = Keys()
METRICS_KEY = "correct-horse-battery-staple"


async def get(running: RunningRelay, path: str, **kwargs: Any) -> HttpReply:
    return await http_request(running.http_url + path, **kwargs)


# --- /health -------------------------------------------------------------------------------------


async def test_health_is_200_with_version_uptime_and_store(running: RunningRelay) -> None:
    """A working relay answers 200 with the R-H1 document."""
    reply = await get(running, "/health")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    assert isinstance(document, dict)
    assert document["status"] == "healthy" and document["version"] == __version__
    assert document["store"] == "ok" and document["bus"] == "disabled"
    assert isinstance(document["uptime_seconds"], int) and document["uptime_seconds"] >= 0


async def flaky_relay(start_relay: StartRelay, tmp_path: Path) -> tuple[RunningRelay, FlakyStore]:
    config = make_config(tmp_path / "data")
    store = FlakyStore(config.sqlite_path)
    running: RunningRelay = await start_relay(config, store)
    return running, store


async def test_health_is_503_when_the_store_fails(start_relay: StartRelay, tmp_path: Path) -> None:
    """A store that raises makes /health 503 unhealthy, naming the store; it recovers."""
    running, store = await flaky_relay(start_relay, tmp_path)
    store.health_mode = "raise"
    reply = await get(running, "/health")
    document = reply.json()
    assert reply.status == 503 and isinstance(document, dict)
    assert document["status"] == "unhealthy" and document["store"].startswith("error")
    store.health_mode = "ok"
    assert (await get(running, "/health")).status == 200


async def guarded_flaky_relay(
    start_relay: StartRelay, tmp_path: Path, write_check_interval: float
) -> tuple[RunningRelay, FlakyStore]:
    """A relay on a :class:`FlakyStore` whose guard makes a write check while writes fail
    at most every ``write_check_interval`` seconds (0: at every /health)."""
    config = make_config(tmp_path / "data")
    store = FlakyStore(config.sqlite_path)
    guarded = GuardedStore(
        store, timeout=config.data.store_timeout, write_check_interval=write_check_interval
    )
    running: RunningRelay = await start_relay(config, guarded)
    return running, store


async def test_health_is_503_while_writes_fail_and_200_once_they_work_without_a_write(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Writes failing while reads work: /health is 503 naming the write failure, and stays
    503 while the fault lasts; once it is gone, /health is 200 again with no client write
    (its own write check committed; no event was stored)."""
    running, store = await guarded_flaky_relay(start_relay, tmp_path, write_check_interval=0)
    client = await running.client()
    store.fail_saves = True
    lost = ALICE.sign(1, "lost")
    assert (await client.publish(lost))[:3] == ["OK", lost.id, False]
    assert (await client.req("s", {}))[1][0] == "EOSE"  # reads still work
    for _ in range(2):
        reply = await get(running, "/health")
        document = reply.json()
        assert reply.status == 503 and isinstance(document, dict)
        assert document["status"] == "unhealthy"
        assert document["store"].startswith("error: writes failing: ")
    store.fail_saves = False
    reply = await get(running, "/health")
    document = reply.json()
    assert reply.status == 200 and isinstance(document, dict) and document["store"] == "ok"
    assert await client.req("after", {}) == ([], ["EOSE", "after"])


async def test_a_health_flood_while_writes_fail_makes_one_write_check(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Many /health requests, one after another and at once, while writes fail: all 503,
    and the store sees one write check, not one per request."""
    running, store = await guarded_flaky_relay(start_relay, tmp_path, write_check_interval=3600)
    client = await running.client()
    store.fail_saves = True
    lost = ALICE.sign(1, "lost")
    assert (await client.publish(lost))[:3] == ["OK", lost.id, False]
    replies = [await get(running, "/health") for _ in range(5)]
    replies += await asyncio.gather(*(get(running, "/health") for _ in range(10)))
    assert {reply.status for reply in replies} == {503}
    assert store.write_checks == 1


async def test_health_is_503_when_the_store_does_not_answer(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A store whose health check hangs is reported unhealthy after the 1 s budget, and
    the failing part says why."""
    running, store = await flaky_relay(start_relay, tmp_path)
    store.health_mode = "hang"
    reply = await get(running, "/health")
    document = reply.json()
    assert reply.status == 503 and isinstance(document, dict)
    assert document["status"] == "unhealthy"
    assert document["store"] == "error: no answer within 1 s"


async def test_health_is_503_maintenance_in_maintenance_mode(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """R-C3: ``information.maintenance`` makes /health 503 with status maintenance."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", information={"maintenance": True})
    )
    reply = await get(running, "/health")
    assert reply.status == 503 and reply.json()["status"] == "maintenance"  # type: ignore[index]


async def test_head_health_has_no_body(running: RunningRelay) -> None:
    """HEAD /health answers the status without a body (Cloud Run probes may use it)."""
    reply = await get(running, "/health", method="HEAD")
    assert reply.status == 200 and reply.body == b""


@pytest.mark.parametrize("path", ["/", "/health", "/metrics"])
async def test_another_method_on_a_read_only_path_is_405_with_allow(
    start_relay: StartRelay, tmp_path: Path, path: str
) -> None:
    """POST or PUT on /, /health or /metrics (enabled): the path exists, so 405 with
    ``Allow`` and a JSON error (not 404)."""
    running = await metrics_relay(start_relay, tmp_path, enabled=True, auth=METRICS_KEY)
    for method in ("POST", "PUT"):
        reply = await get(running, path, method=method, body=b"{}")
        assert reply.status == 405, (method, path, reply.status)
        assert reply.headers["allow"] == "GET, HEAD, OPTIONS"
        assert reply.json() == {"error": f"method {method} not allowed"}


# --- NIP-11 --------------------------------------------------------------------------------------


async def test_nip11_document_with_cors(start_relay: StartRelay, tmp_path: Path) -> None:
    """``Accept: application/nostr+json`` on / returns the information document with CORS."""
    operator = Keys().pubkey
    running: RunningRelay = await start_relay(
        make_config(
            tmp_path / "data",
            information={"name": "test relay", "pubkey": operator, "contact": "ops@example.com"},
            limitation={"max_limit": 321},
        )
    )
    reply = await get(running, "/", headers={"Accept": "application/nostr+json"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/nostr+json"
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "accept" in reply.headers["access-control-allow-headers"].lower()
    assert "GET" in reply.headers["access-control-allow-methods"]
    document = reply.json()
    assert isinstance(document, dict)
    assert document["name"] == "test relay" and document["pubkey"] == operator
    assert document["contact"] == "ops@example.com" and document["version"] == __version__
    assert {"software", "description"} <= set(document)
    assert {1, 9, 11, 40, 42, 45, 70} <= set(document["supported_nips"])
    limitation = document["limitation"]
    assert limitation["max_limit"] == 321
    assert limitation["auth_required"] is False and limitation["restricted_writes"] is False
    assert limitation["created_at_lower_limit"] == 94608000
    assert limitation["created_at_upper_limit"] == 900


async def test_nip11_reports_auth_required_with_an_allowlist(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """With a non-empty allowlist NIP-11 says auth_required and restricted_writes."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", auth={"pubkey_whitelist": (ALICE.pubkey,)})
    )
    reply = await get(running, "/", headers={"Accept": "application/nostr+json"})
    limitation = reply.json()["limitation"]  # type: ignore[index]
    assert limitation["auth_required"] is True and limitation["restricted_writes"] is True


@pytest.mark.parametrize(
    ("zero_key", "omitted", "kept"),
    [
        ("max_event_time_older_than_now", "created_at_lower_limit", "created_at_upper_limit"),
        ("max_event_time_newer_than_now", "created_at_upper_limit", "created_at_lower_limit"),
    ],
)
async def test_nip11_leaves_out_a_created_at_limit_of_0(
    start_relay: StartRelay, tmp_path: Path, zero_key: str, omitted: str, kept: str
) -> None:
    """A created_at limit of 0 means no limit, so NIP-11 does not advertise it (a 0 there
    would say "nothing before/after now"); the other bound is still advertised."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", limitation={zero_key: 0})
    )
    reply = await get(running, "/", headers={"Accept": "application/nostr+json"})
    limitation = reply.json()["limitation"]  # type: ignore[index]
    assert omitted not in limitation and limitation[kept] > 0


async def test_the_index_page_redirects_where_index_redirect_to_says(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """rnostr's ``network.index_redirect_to``: a browser opening the relay's page is sent
    there; NIP-11 clients (Accept: application/nostr+json) still get the document."""
    running: RunningRelay = await start_relay(
        make_config(tmp_path / "data", network={"index_redirect_to": "https://example.com/"})
    )
    reply = await get(running, "/")
    assert reply.status == 302 and reply.headers["location"] == "https://example.com/"
    nip11 = await get(running, "/", headers={"Accept": "application/nostr+json"})
    assert nip11.status == 200 and nip11.json()["name"]  # type: ignore[index]


async def test_cors_preflight(running: RunningRelay) -> None:
    """OPTIONS answers 204 with the CORS headers (browsers preflight NIP-11 fetches)."""
    reply = await get(running, "/", method="OPTIONS")
    assert reply.status == 204 and reply.headers["access-control-allow-origin"] == "*"


async def test_plain_get_of_root_is_not_the_nip11_document(running: RunningRelay) -> None:
    """Without the nostr Accept header / is a short human-readable page."""
    reply = await get(running, "/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")


async def test_unknown_paths_are_404(running: RunningRelay) -> None:
    """Anything else is a JSON 404."""
    reply = await get(running, "/nope")
    assert reply.status == 404 and reply.json() == {"error": "not found"}


# --- /metrics ------------------------------------------------------------------------------------


async def metrics_relay(start_relay: StartRelay, tmp_path: Path, **metrics: Any) -> RunningRelay:
    running: RunningRelay = await start_relay(make_config(tmp_path / "data", metrics=metrics))
    return running


async def test_metrics_disabled_is_404(running: RunningRelay) -> None:
    """metrics.enabled = false (default) → 404."""
    assert (await get(running, "/metrics")).status == 404


async def test_metrics_with_a_wrong_or_missing_key_is_401(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """A wrong bearer token, a wrong ?auth= or none at all → 401."""
    running = await metrics_relay(start_relay, tmp_path, enabled=True, auth=METRICS_KEY)
    for kwargs in (
        {},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"headers": {"Authorization": f"Basic {METRICS_KEY}"}},
    ):
        reply = await get(running, "/metrics", **kwargs)
        assert reply.status == 401, kwargs
        assert b"nostr_relay" not in reply.body
    assert (await get(running, "/metrics?auth=wrong")).status == 401


async def test_head_metrics_answers_like_get_without_a_body(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """HEAD /metrics with the key → 200 and no body; without the key → 401."""
    running = await metrics_relay(start_relay, tmp_path, enabled=True, auth=METRICS_KEY)
    key = {"Authorization": f"Bearer {METRICS_KEY}"}
    reply = await get(running, "/metrics", method="HEAD", headers=key)
    assert reply.status == 200 and reply.body == b""
    assert (await get(running, "/metrics", method="HEAD")).status == 401


async def test_metrics_with_bearer_or_query_key(start_relay: StartRelay, tmp_path: Path) -> None:
    """The right key as ``Authorization: Bearer`` or ``?auth=`` → 200 Prometheus text."""
    running = await metrics_relay(start_relay, tmp_path, enabled=True, auth=METRICS_KEY)
    bearer = await get(running, "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    query = await get(running, f"/metrics?auth={METRICS_KEY}")
    for reply in (bearer, query):
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain")
        assert b"# TYPE nostr_relay_connections gauge" in reply.body


async def test_metrics_count_relay_activity(start_relay: StartRelay, tmp_path: Path) -> None:
    """The core nostr_relay_* series move with traffic."""
    running = await metrics_relay(start_relay, tmp_path, enabled=True)
    client = await running.client()
    await client.publish(ALICE.sign(1, "counted"))
    await client.req("s", {})
    await client.authenticate(ALICE)
    await client.send("AUTH", ALICE.sign(22242, "", [["challenge", "wrong"]]).to_dict())
    await client.recv_until("OK")
    text = (await get(running, "/metrics")).body.decode()
    expected = [
        "nostr_relay_connections 1.0",
        'nostr_relay_messages_total{command="EVENT"} 1.0',
        'nostr_relay_messages_total{command="REQ"} 1.0',
        'nostr_relay_events_total{kind="1",result="stored"} 1.0',
        'nostr_relay_auth_failures_total{reason="challenge"} 1.0',
        'nostr_relay_store_seconds_count{op="save"} 1.0',
        "# TYPE nostr_relay_rate_limited_total counter",
    ]
    for line in expected:
        assert line in text, line
