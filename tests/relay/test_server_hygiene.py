"""Protocol hygiene over real sockets (issue 8 points 3, 5, 14, 15): HTTP heads parsed by
h11, the handshake timeout, 1007 on invalid UTF-8, connections per IP."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from pathlib import Path

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.frames import Frame, Opcode

from relay.server import handshake_refusal
from tests.conftest import RunningRelay, StartRelay, make_config
from tests.support.nostr import TIMEOUT, RawClient

# --- raw HTTP ----------------------------------------------------------------------------


async def exchange(running: RunningRelay, data: bytes) -> bytes:
    """Write ``data`` in one write and read until the relay closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("name", "head", "status"),
    [
        ("space before colon", b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (
            "signed content length",
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
            400,
        ),
        (
            "underscore in content length",
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0_5\r\n\r\nhello",
            400,
        ),
        ("NUL in a header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
        ("no Host", b"GET /health HTTP/1.1\r\n\r\n", 400),
        (
            "20 KB head in one write",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_malformed_or_oversized_heads_are_refused(
    running: RunningRelay, name: str, head: bytes, status: int
) -> None:
    reply = await exchange(running, head)
    assert status_of(reply) == status, name
    assert b'"error"' in reply


async def test_an_absolute_form_target_is_served(running: RunningRelay) -> None:
    port = running.server.port
    reply = await exchange(
        running, f"GET http://127.0.0.1:{port}/health HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status_of(reply) == 200 and b'"status":"healthy"' in reply


UPGRADE_HEADERS = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize("upgrade", [b"", UPGRADE_HEADERS], ids=["plain", "upgrade"])
async def test_a_bad_ipv6_authority_in_the_target_gets_400_without_a_traceback(
    running: RunningRelay, caplog: pytest.LogCaptureFixture, upgrade: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    head = b"GET http://[::1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + upgrade + b"\r\n"
    reply = await exchange(running, head)
    assert status_of(reply) == 400
    assert reply.endswith(b'{"error":"malformed HTTP request: bad request target"}')
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    again = await exchange(running, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(again) == 200


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"X-Cookie: " + b"a" * 9000 + b"\r\n", "too long"),
        (b"".join(b"X-%d: 1\r\n" % i for i in range(200)), "too many"),
    ],
    ids=["9 KB header line", "200 headers"],
)
async def test_an_upgrade_head_past_the_websocket_parser_limits_gets_431_saying_which(
    running: RunningRelay, extra: bytes, reason: str
) -> None:
    """The head fits the relay's 16 KB, but websockets allows 8 KB a line and 128 headers."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + UPGRADE_HEADERS + extra + b"\r\n"
    reply = await exchange(running, head)
    assert status_of(reply) == 431
    error = orjson.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    assert error.startswith("WebSocket handshake refused: ") and reason in error


def test_an_upgrade_head_the_websocket_parser_refuses_gets_400_with_its_reason() -> None:
    refused = InvalidMessage("did not receive a valid HTTP request")
    refused.__cause__ = ValueError("invalid HTTP header line: X")
    response = handshake_refusal(refused)
    assert response.status == 400
    assert orjson.loads(response.body) == {
        "error": "malformed WebSocket handshake: invalid HTTP header line: X"
    }


async def test_a_chunked_body_is_read(running: RunningRelay) -> None:
    """h11 decodes chunked request bodies, so the relay accepts them."""
    reply = await exchange(
        running,
        b"POST /nothing-here HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
    )
    assert status_of(reply) == 404


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


async def test_frames_sent_with_the_upgrade_request_reach_the_websocket(
    running: RunningRelay,
) -> None:
    """Bytes after the head in the same write are the first WebSocket frames."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    frame = masked_frame(0x1, orjson.dumps(["REQ", "early", {"limit": 0}]))
    reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
    writer.write(head + frame)
    seen = b""
    try:
        while b'["EOSE","early"]' not in seen:
            chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert chunk, f"closed before EOSE: {seen!r}"
            seen += chunk
    finally:
        writer.close()
    assert seen.startswith(b"HTTP/1.1 101")


# --- handshake timeout ---------------------------------------------------------------------


async def test_heads_sent_byte_by_byte_time_out(start_relay: StartRelay, tmp_path: Path) -> None:
    """Slowloris: connections that never finish their head get 408 and are closed."""
    config = make_config(tmp_path / "data", network={"handshake_timeout": 0.5})
    running: RunningRelay = await start_relay(config)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000

    async def slow_client() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        received = b""

        async def dribble() -> None:
            for byte in head:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(dribble())
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
                if not chunk:
                    return received
                received += chunk
        finally:
            sender.cancel()
            writer.close()

    replies = await asyncio.gather(*(slow_client() for _ in range(20)))
    for reply in replies:
        assert status_of(reply) == 408
        assert b"network.handshake_timeout" in reply
    assert not running.server.connections


async def test_a_completed_websocket_outlives_the_handshake_timeout(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "data", network={"handshake_timeout": 0.2})
    running: RunningRelay = await start_relay(config)
    client = await running.client()
    await asyncio.sleep(0.5)  # past the timeout: the upgraded connection is not affected
    assert (await client.req("s", {"limit": 0}))[1] == ["EOSE", "s"]


# --- pending plain requests ---------------------------------------------------------------


async def test_a_content_length_over_64_kib_gets_413_before_the_body_is_sent(
    running: RunningRelay,
) -> None:
    """The REST API's bodies are small: a larger one is refused from its head alone."""
    head = b"POST /api/v1/messages/missed HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n"
    reply = await exchange(running, head)  # no body follows
    assert status_of(reply) == 413
    assert reply.endswith(b'{"error":"request body larger than 65536 bytes"}')


async def until_counted(running: RunningRelay, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while running.server.per_ip.get("127.0.0.1", 0) != count:
        assert asyncio.get_running_loop().time() < deadline, running.server.per_ip
        await asyncio.sleep(0.01)


async def test_plain_requests_beyond_the_per_ip_limit_get_429_naming_it(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """Requests whose body is still on the way hold a place each; the next one is refused,
    the ones holding places are still served, and a closed one frees its place."""
    config = make_config(tmp_path / "data", network={"max_connections_per_ip": 2})
    running: RunningRelay = await start_relay(config)
    pending = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        writer.write(b"POST /nothing-here HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        pending.append((reader, writer))
    await until_counted(running, 2)

    refused = await exchange(running, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(refused) == 429
    assert b"too many connections from your address" in refused
    assert b"(network.max_connections_per_ip = 2)" in refused

    for reader, writer in pending:
        writer.write(b"hello")
        reply = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert status_of(reply) == 404  # served: the path just does not exist
    await until_counted(running, 0)
    again = await exchange(running, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(again) == 200


async def test_open_websockets_count_against_the_plain_request_limit(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "data", network={"max_connections_per_ip": 1})
    running: RunningRelay = await start_relay(config)
    client = await running.client()
    assert (await client.req("s", {"limit": 0}))[1] == ["EOSE", "s"]
    refused = await exchange(running, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(refused) == 429


# --- RFC 6455 §8.1 ---------------------------------------------------------------------------


async def close_code_after(running: RunningRelay, *frames: Frame) -> int:
    """Send ``frames`` on a raw WebSocket; the code of the close frame the relay sends."""
    client = await RawClient.open(running.url)
    for frame in frames:
        client.protocol.send_frame(frame)
    for chunk in client.protocol.data_to_send():
        client.writer.write(chunk)
    try:
        while True:
            data = await asyncio.wait_for(client.reader.read(65536), TIMEOUT)
            assert data, "closed without a close frame"
            client.protocol.receive_data(data)
            for event in client.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    return int.from_bytes(event.data[:2], "big")
    finally:
        client.close()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(running: RunningRelay) -> None:
    frame = Frame(Opcode.TEXT, b'["REQ","s",{"#t":["\xff\xfe"]}]')
    assert await close_code_after(running, frame) == 1007
    # The relay keeps serving everyone else.
    other = await running.client()
    assert (await other.req("s", {"limit": 0}))[1] == ["EOSE", "s"]


async def test_invalid_utf8_split_across_fragments_closes_with_1007(
    running: RunningRelay,
) -> None:
    first = Frame(Opcode.TEXT, b'["REQ","s",{"#t":["\xc3', fin=False)
    last = Frame(Opcode.CONT, b'"]}]')
    assert await close_code_after(running, first, last) == 1007


async def test_a_utf8_character_split_across_fragments_is_accepted(
    running: RunningRelay,
) -> None:
    """Validation is of the whole message, not of each fragment."""
    client = await RawClient.open(running.url)
    client.protocol.send_frame(Frame(Opcode.TEXT, b'["REQ","s",{"#t":["\xc3', fin=False))
    client.protocol.send_frame(Frame(Opcode.CONT, b'\xa9"]}]'))
    for chunk in client.protocol.data_to_send():
        client.writer.write(chunk)
    while (message := await client.recv())[0] != "EOSE":
        assert message[0] == "AUTH", message
    client.close()


# --- connections per IP ------------------------------------------------------------------------


async def test_connections_beyond_the_per_ip_limit_get_a_notice_naming_it(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "data", network={"max_connections_per_ip": 3})
    running: RunningRelay = await start_relay(config)
    admitted = [await running.client() for _ in range(3)]
    for client in admitted:
        assert (await client.req("s", {"limit": 0}))[1] == ["EOSE", "s"]
    refused = await running.client()
    notice = await refused.recv()
    assert notice[0] == "NOTICE" and "network.max_connections_per_ip = 3" in notice[1]
    assert notice[1].startswith("rate-limited:")
    with pytest.raises(ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    # A closed connection frees its place.
    await admitted[0].close()
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while running.server.per_ip.get("127.0.0.1", 0) > 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    again = await running.client()
    assert (await again.req("s", {"limit": 0}))[1] == ["EOSE", "s"]
