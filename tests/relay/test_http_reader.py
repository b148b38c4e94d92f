"""relay.http_reader: one HTTP/1.1 request parsed by h11, fed in any chunking."""

from __future__ import annotations

import pytest

from relay.http_reader import ReadError, ReadRequest, RequestReader, origin_form


def read(data: bytes, step: int | None = None) -> ReadRequest | ReadError | None:
    reader = RequestReader(16 * 1024, 1024)
    step = step or len(data)
    result = None
    for start in range(0, len(data), step):
        result = reader.feed(data[start : start + step])
        if result is not None:
            return result
    return result


@pytest.mark.parametrize("step", [1, 7, None])
def test_a_post_body_arrives_whole_in_any_chunking(step: int | None) -> None:
    result = read(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", step)
    assert result == ReadRequest("POST", "/api", {"host": "x", "content-length": "5"}, b"hello")


def test_an_incomplete_head_needs_more_data() -> None:
    assert read(b"GET / HTTP/1.1\r\nHost: x\r\n") is None


def test_repeated_headers_are_joined() -> None:
    result = read(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    assert isinstance(result, ReadRequest) and result.headers["x-a"] == "1, 2"


def test_a_websocket_upgrade_keeps_the_bytes_after_the_head() -> None:
    result = read(b"GET /ws?a=1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\r\n\x81\x00")
    assert isinstance(result, ReadRequest) and result.upgrade
    assert result.rest == b"\x81\x00"
    assert result.head == b"GET /ws?a=1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 17_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 17_000, 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"
            + b"a" * 2048,
            413,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ],
    ids=[
        "large head",
        "large incomplete head",
        "large body",
        "large chunked body",
        "two hosts",
    ],
)
def test_bad_requests_get_a_precise_status(data: bytes, status: int) -> None:
    result = read(data)
    assert isinstance(result, ReadError) and result.status == status


@pytest.mark.parametrize("upgrade", [b"", b"Upgrade: websocket\r\n"], ids=["plain", "upgrade"])
@pytest.mark.parametrize("target", [b"http://[::1/health", b"http://]/"])
def test_an_absolute_form_target_with_a_bad_authority_is_a_400(
    target: bytes, upgrade: bytes
) -> None:
    """urlsplit refuses the authority: the answer is a 400, not an escaping ValueError."""
    result = read(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n")
    assert result == ReadError(400, "malformed HTTP request: bad request target")


def test_end_of_stream_before_a_complete_request_is_an_error() -> None:
    reader = RequestReader(16 * 1024, 1024)
    assert reader.feed(b"GET / HTTP/1.1\r\n") is None
    result = reader.feed(b"")
    assert isinstance(result, ReadError) and result.status == 400


def test_absolute_form_targets_become_origin_form() -> None:
    assert origin_form("http://relay.example:8080/health?x=1") == "/health?x=1"
    assert origin_form("https://relay.example") == "/"
    assert origin_form("/already") == "/already"
