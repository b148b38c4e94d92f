"""Access refusals are logged, one JSON line each, for ``mlsgw audit`` (over real sockets)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from relay.access_log import AUDIT_TAG
from relay.logs import JsonFormatter
from tests.conftest import StartRelay
from tests.relay.test_auth_server import ALICE, BOB, allowlisted, send_auth


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "relay.access"]


async def test_refused_req_auth_and_event_each_log_one_line_with_the_client_ip(
    start_relay: StartRelay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """REQ before AUTH, a bad AUTH and an unlisted EVENT: three lines, stage and reason."""
    caplog.set_level(logging.INFO, logger="relay.access")
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    assert (await client.req("s", {}))[1][0] == "CLOSED"
    reply = await send_auth(client, BOB, tags=[["challenge", "not-the-challenge"]])
    assert reply[2] is False
    await send_auth(client, BOB)
    assert (await client.publish(BOB.sign(1, "unlisted")))[2] is False
    lines = _access_lines(caplog)
    assert [(x["stage"], x["reason"]) for x in lines] == [
        ("req", "auth-required"),
        ("auth", lines[1]["reason"]),
        ("event", "restricted"),
    ]
    assert all(x["audit"] == AUDIT_TAG and x["ip"] == "127.0.0.1" for x in lines)
    assert all(x["severity"] == "INFO" for x in lines)
    text = json.dumps(lines)
    assert BOB.pubkey not in text and "unlisted" not in text, "no pubkeys or content logged"


async def test_accepted_traffic_logs_no_access_lines(
    start_relay: StartRelay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listed, authenticated client reading and writing leaves no refusal lines."""
    caplog.set_level(logging.INFO, logger="relay.access")
    running = await allowlisted(start_relay, tmp_path, ALICE.pubkey)
    client = await running.client()
    await send_auth(client, ALICE)
    assert (await client.publish(ALICE.sign(1, "hello")))[2] is True
    assert (await client.req("s", {}))[1][0] == "EOSE"
    assert _access_lines(caplog) == []
