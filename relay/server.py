"""The only module that touches sockets: HTTP and WebSocket on one asyncio port.

Each TCP connection is an :class:`asyncio.Protocol`. It reads one HTTP request with
``h11`` (:mod:`relay.http_reader`), within ``network.handshake_timeout``; a WebSocket
upgrade is handed to websockets' Sans-I/O ``ServerProtocol`` (with the bytes that
followed the head) and every complete message goes to the relay application in order,
through a small inbox (reading pauses while the inbox is full): one at a time, or what
a pipelining client sent back to back as one batch, with the same answers in order. Anything
else is answered by ``relay.http`` and the connection closes.

Why not ``websockets.asyncio.server.serve``: its handshake parser refuses request
bodies, and the REST API needs POST. Driving the Sans-I/O protocol directly also lets
the relay watch each connection's send buffer (R-P7, :mod:`relay.core.backlog`): above
``network.send_high_water`` REQ answers wait for the client to read, and only a client
that makes no progress for ``network.slow_consumer_timeout``, or passes the hard cap
``network.max_send_buffer``, is dropped. The relay's own frames (text, unmasked, never
fragmented or compressed) are built here and written in one call per batch; the
protocol object only parses what clients send and handles control frames.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus

from websockets.exceptions import InvalidMessage, PayloadTooBig, SecurityError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from relay.app import Relay
from relay.core import messages as m
from relay.core.backlog import Backlog, BacklogLimits, over_total
from relay.core.policy import ip_permitted
from relay.core.session import Session
from relay.http import handle_http
from relay.http_messages import HttpRequest, HttpResponse, json_response
from relay.http_reader import ReadError, ReadRequest, RequestReader

log = logging.getLogger("relay.server")

MAX_HEAD_BYTES = 16 * 1024
# The REST API's bodies are small JSON objects ({"group_id", "since", "limit"}: well under
# 1 KiB); the cap bounds what a pending request holds until network.handshake_timeout.
MAX_BODY_BYTES = 64 * 1024
INBOX_HIGH_WATER = 64
INBOX_LOW_WATER = 16
MAX_PIPELINED = INBOX_HIGH_WATER  # messages one batch of a connection takes at most
CLOSE_TIMEOUT = 2.0
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def text_frame_header(length: int) -> bytes:
    """The RFC 6455 header of a final, unmasked text frame (server to client) carrying
    ``length`` bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 0x10000:
        return _HEADER_16.pack(0x81, 126, length)
    return _HEADER_64.pack(0x81, 127, length)


def client_ip(
    peer_ip: str, headers: dict[str, str], real_ip_header: str | None, trusted_hops: int = 1
) -> str:
    """The client's address behind ``trusted_hops`` proxies that each append to
    ``real_ip_header``: the ``trusted_hops``-th entry from the right, or the socket's peer
    address when the header is unset, shorter than that or not an IP address.

    Never the leftmost entry: the client writes that one itself."""
    if not real_ip_header or trusted_hops < 1:
        return peer_ip
    entries = [e.strip() for e in headers.get(real_ip_header.lower(), "").split(",")]
    if len(entries) < trusted_hops:
        return peer_ip
    try:
        return str(ipaddress.ip_address(entries[-trusted_hops]))
    except ValueError:
        return peer_ip


# websockets' size limits on a handshake head (its exception names from version 17; older
# versions raise a plain SecurityError whose message says which).
_HANDSHAKE_LIMITS = {
    "RequestLineTooLong": "the request line is too long",
    "HeaderLineTooLong": "a header line is too long",
    "TooManyHeaders": "too many headers",
}


def handshake_refusal(exc: BaseException | None) -> HttpResponse:
    """The answer to an upgrade head that h11 accepted but websockets' parser refused:
    ``431`` when it passes one of the parser's size limits (a line of 8 KB, 128 headers),
    else ``400``, with the parser's reason either way."""
    if isinstance(exc, InvalidMessage) and exc.__cause__ is not None:
        exc = exc.__cause__  # "did not receive a valid HTTP request", because of the cause
    reason = str(exc) if exc is not None else "no request"
    if isinstance(exc, SecurityError):
        what = _HANDSHAKE_LIMITS.get(type(exc).__name__)
        detail = f"{what} ({reason})" if what else reason
        return json_response(431, {"error": f"WebSocket handshake refused: {detail}"})
    return json_response(400, {"error": f"malformed WebSocket handshake: {reason}"})


class WebSocketPeer:
    """The relay side of one open WebSocket: the Sans-I/O protocol plus the session.

    Implements :class:`relay.peer.Peer`. Frames are handled in order by
    a worker task fed through :attr:`inbox`.
    """

    def __init__(
        self, conn: Connection, ws: ServerProtocol, session: Session, transport: asyncio.Transport
    ) -> None:
        self.conn = conn
        self.relay = conn.relay
        self.ws = ws
        self.session = session
        self.transport = transport
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None
        self.reading_paused = False
        self.closing = False
        self.told_too_big = False
        self.written = 0
        self.writable = asyncio.Event()
        self.writable.set()

    @property
    def is_open(self) -> bool:
        """True while frames can still be sent."""
        return not self.closing and self.ws.state is State.OPEN

    def send(self, data: bytes) -> None:
        """Send one text frame; drops the client if its unsent data passes the hard cap."""
        self.send_many((data,))

    def send_many(self, frames: Iterable[bytes]) -> None:
        """Send text frames in one write (one system call for a batch of a REQ answer).

        The frames are built here rather than by the protocol object (same bytes: FIN,
        unmasked, no extension is ever negotiated), after whatever it has queued."""
        if not self.is_open:
            return
        self.flush()
        parts: list[bytes] = []
        for data in frames:
            parts.append(text_frame_header(len(data)))
            parts.append(data)
        out = b"".join(parts)
        self.transport.write(out)
        self.written += len(out)
        reason = self.conn.backlog.over_cap(self.transport.get_write_buffer_size())
        if reason is not None:
            self.conn.drop_slow(reason)

    async def drain(self) -> None:
        """Return once the send buffer is below its low-water mark or the peer is closed."""
        while not self.writable.is_set():
            await self.writable.wait()

    def receive(self, data: bytes) -> None:
        """Feed bytes from the socket."""
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
        if isinstance(self.ws.parser_exc, PayloadTooBig) and not self.told_too_big:
            self._tell_too_big(self.ws.parser_exc)
        self.flush()

    def _tell_too_big(self, exc: PayloadTooBig) -> None:
        """A frame far beyond ``max_message_length`` was refused unread, and the protocol
        queued its close (1009): a NOTICE saying why goes out just before it."""
        self.told_too_big = True
        limit = self.relay.config.limitation.max_message_length
        total = None if exc.size is None else exc.size + (exc.current_size or 0)  # fragments
        size = f"is {total} bytes" if total is not None else "is too large"
        notice = m.encode_notice(f"invalid: message {size}, the limit is {limit}")
        self.transport.write(text_frame_header(len(notice)) + notice)

    def receive_eof(self) -> None:
        """The client half-closed the TCP connection."""
        self.ws.receive_eof()
        self.flush()

    def _on_frame(self, frame: Frame) -> None:
        if self.ws.state is not State.OPEN:
            return
        opcode = frame.opcode
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._on_message(opcode, bytes(frame.data))
            else:
                self.fragment_opcode, self.fragments = opcode, [bytes(frame.data)]
        elif opcode is Opcode.CONT and self.fragment_opcode is not None:
            self.fragments.append(bytes(frame.data))
            if frame.fin:
                data, opcode = b"".join(self.fragments), self.fragment_opcode
                self.fragment_opcode, self.fragments = None, []
                self._on_message(opcode, data)

    def _on_message(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                # RFC 6455 §8.1: a text message that is not UTF-8 fails the connection.
                self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
        # Binary frames are read like text (the parser rejects non-UTF-8 JSON precisely):
        # some clients send JSON in binary frames, and refusing them helps no one.
        self.inbox.put_nowait(data)
        if self.inbox.qsize() >= INBOX_HIGH_WATER and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True

    async def work(self) -> None:
        """Handle this connection's messages in order until it closes: one at a time, or
        every message already waiting as one pipelined batch (see ``Relay.handle_frames``)."""
        while True:
            frame = await self.inbox.get()
            if frame is None:
                return
            frames = [frame]
            closed = False
            while len(frames) < MAX_PIPELINED and not self.inbox.empty():
                more = self.inbox.get_nowait()
                if more is None:
                    closed = True
                    break
                frames.append(more)
            try:
                await self.relay.handle_frames(self, frames)
            except Exception:
                log.exception("internal error while handling a message")
                self.send(m.encode_notice("error: internal error"))
            if closed:
                return
            if self.reading_paused and self.inbox.qsize() <= INBOX_LOW_WATER:
                self.reading_paused = False
                if not self.closing:
                    self.transport.resume_reading()

    def flush(self) -> None:
        """Write whatever the protocol has queued; close the socket when it says so."""
        chunks = self.ws.data_to_send()
        if chunks:
            data = b"".join(chunks)
            if data:
                self.transport.write(data)
                self.written += len(data)
            if chunks[-1] == b"":  # the protocol's end-of-stream marker comes last
                self.transport.close()
        if self.ws.close_expected() and not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.conn.abort)

    def close(self, code: int, reason: str) -> None:
        """Start the WebSocket closing handshake (the socket closes after it)."""
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
            self.flush()

    def ping(self) -> None:
        """Send a WebSocket ping (liveness, R-P7)."""
        if self.ws.state is State.OPEN:
            self.ws.send_ping(b"mlsgw")
            self.flush()

    def closed(self) -> None:
        """The socket is gone: stop fan-out and let the worker finish what it has."""
        self.closing = True
        self.writable.set()  # release a REQ answer waiting in drain()
        self.relay.unregister(self)
        self.inbox.put_nowait(None)


class Connection(asyncio.Protocol):
    """One TCP connection: an HTTP request, possibly upgraded to a :class:`WebSocketPeer`."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.relay = server.relay
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader(MAX_HEAD_BYTES, MAX_BODY_BYTES)
        self.peer: WebSocketPeer | None = None
        self.upgraded = False
        self.head_read = False
        self.ip = ""
        self.counted_ip: str | None = None
        self.last_seen = time.monotonic()
        self.ping_sent = False
        self.backlog = Backlog(server.backlog_limits)
        self.handshake_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = typing.cast(asyncio.Transport, transport)
        high = self.server.backlog_limits.high_water
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        self.server.connections.add(self)
        timeout = self.relay.config.network.handshake_timeout
        self.handshake_timer = asyncio.get_running_loop().call_later(
            timeout, self._handshake_expired
        )

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.ping_sent = False
        if self.peer is not None:
            self.peer.receive(data)
        elif not self.upgraded:
            self._on_http_bytes(data)

    def eof_received(self) -> bool | None:
        if self.peer is not None:
            self.peer.receive_eof()
        elif not self.upgraded:
            self._on_http_bytes(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_handshake_timer()
        self.server.connections.discard(self)
        self.server.backlogged.discard(self)
        if self.counted_ip is not None:
            self.server.release_ip(self.counted_ip)
            self.counted_ip = None
        if self.peer is not None:
            self.peer.closed()

    def pause_writing(self) -> None:
        # The transport's buffer passed network.send_high_water.
        if self.peer is not None:
            self.peer.writable.clear()
        self.server.backlogged.add(self)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.writable.set()
        self.server.backlogged.discard(self)

    def abort(self) -> None:
        """Drop the TCP connection now."""
        if self.peer is not None:
            self.peer.closing = True
        if self.transport is not None:
            self.transport.abort()

    def drop_slow(self, reason: str) -> None:
        """Drop a client that stopped reading (R-P7), counting and logging why."""
        if self.transport is None or self.transport.is_closing():
            return
        self.relay.metrics.slow_consumers.inc()
        log.warning("dropping a client that stopped reading", extra={"ip": self.ip, "why": reason})
        self.abort()

    # --- HTTP --------------------------------------------------------------------------

    def _stop_handshake_timer(self) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None

    def _handshake_expired(self) -> None:
        self.handshake_timer = None
        if self.upgraded or self.peer is not None:
            return
        self.upgraded = True
        timeout = self.relay.config.network.handshake_timeout
        message = f"request not received within network.handshake_timeout ({timeout:g} s)"
        self._respond(json_response(408, {"error": message}))

    def _on_http_bytes(self, data: bytes) -> None:
        result = self.reader.feed(data)
        headers = self.reader.headers
        if headers is not None and not self.head_read and not isinstance(result, ReadError):
            result = self._on_head(headers, result)
        if result is None:
            return
        self._stop_handshake_timer()
        self.upgraded = True  # one request per connection: ignore anything after it
        if isinstance(result, ReadError):
            self._respond(json_response(result.status, {"error": result.message}))
            return
        if result.upgrade:
            self._upgrade(result)
            return
        request = HttpRequest(result.method, result.target, result.headers, result.body, self.ip)
        self.server.spawn(self._serve_http(request))

    def _on_head(
        self, headers: dict[str, str], result: ReadRequest | None
    ) -> ReadRequest | ReadError | None:
        """The head has arrived: the client's address is known. A plain request (its body
        may still be on the way) takes one of the address's ``max_connections_per_ip``
        places, or is refused with 429; a WebSocket takes its place after the handshake."""
        self.head_read = True
        network = self.relay.config.network
        self.ip = client_ip(self.ip, headers, network.real_ip_header, network.trusted_proxy_hops)
        if (result is not None and result.upgrade) or self._claim_ip():
            return result
        limit = network.max_connections_per_ip
        return ReadError(
            429,
            f"too many connections from your address (network.max_connections_per_ip = {limit})",
        )

    def _claim_ip(self) -> bool:
        """Take one of ``network.max_connections_per_ip`` places for :attr:`ip` until the
        connection closes; False (nothing taken) when they are all in use."""
        limit = self.relay.config.network.max_connections_per_ip
        if not limit:
            return True
        if not self.server.claim_ip(self.ip, limit):
            return False
        self.counted_ip = self.ip
        return True

    async def _serve_http(self, request: HttpRequest) -> None:
        try:
            response = await self.server.http_handler(self.relay, request)
        except Exception:
            log.exception("HTTP handler failed", extra={"path": request.path})
            response = json_response(500, {"error": "internal error"})
        self._respond(response, head_only=request.method == "HEAD")

    def _respond(self, response: HttpResponse, *, head_only: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        phrase = HTTPStatus(response.status).phrase
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Connection: close",
            "Cache-Control: no-store",
        ]
        lines += [f"{k}: {v}" for k, v in response.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.transport.write(head if head_only else head + response.body)
        self.transport.close()

    # --- WebSocket upgrade -------------------------------------------------------------

    def _upgrade(self, read: ReadRequest) -> None:
        relay = self.relay
        assert self.transport is not None
        max_size = max(2 * relay.config.limitation.max_message_length, 64 * 1024)
        ws = ServerProtocol(max_size=max_size)
        ws.receive_data(read.head)
        request = next((e for e in ws.events_received() if isinstance(e, Request)), None)
        if request is None:
            self._respond(handshake_refusal(ws.handshake_exc))
            return
        if not ip_permitted(self.ip, relay.allowed_networks, relay.blocked_networks):
            ws.send_response(ws.reject(403, "blocked: your address may not use this relay\n"))
            self._write_all(ws)
            return
        response = ws.accept(request)
        ws.send_response(response)
        self._write_all(ws)
        if response.status_code != 101:
            return
        session = relay.new_session(self.ip, request.headers.get("Host", ""))
        peer = WebSocketPeer(self, ws, session, self.transport)
        self.peer = peer
        if relay.config.information.maintenance:
            peer.send(m.encode_notice(relay.config.information.maintenance_message))
            peer.close(1013, "maintenance")
            return
        if not self._claim_ip():
            limit = relay.config.network.max_connections_per_ip
            peer.send(
                m.encode_notice(
                    f"rate-limited: too many connections from your address"
                    f" (network.max_connections_per_ip = {limit})"
                )
            )
            peer.close(CloseCode.TRY_AGAIN_LATER, "too many connections from your address")
            return
        relay.register(peer)
        peer.worker = self.server.spawn(peer.work())
        for action in peer.session.greeting():
            self.server.spawn(relay.execute(peer, action))
        if read.rest:
            peer.receive(read.rest)

    def _write_all(self, ws: ServerProtocol) -> None:
        assert self.transport is not None
        for chunk in ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()


class RelayServer:
    """Listens on one port and serves :class:`Connection` objects for a :class:`Relay`."""

    def __init__(
        self,
        relay: Relay,
        *,
        http_handler: Callable[[Relay, HttpRequest], Awaitable[HttpResponse]] = handle_http,
    ) -> None:
        self.relay = relay
        self.http_handler = http_handler
        network = relay.config.network
        self.backlog_limits = BacklogLimits(
            high_water=network.send_high_water,
            stall_timeout=network.slow_consumer_timeout,
            hard_cap=network.max_send_buffer,
            total_cap=network.max_send_buffer_total,
        )
        self.connections: set[Connection] = set()
        # Connections whose send buffer is above the high-water mark (watched for progress).
        self.backlogged: set[Connection] = set()
        self.per_ip: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task the server keeps a reference to until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def claim_ip(self, ip: str, limit: int) -> bool:
        """Count one more connection (a WebSocket, or a plain request whose head arrived)
        from ``ip``; False (nothing counted) at ``limit``."""
        count = self.per_ip.get(ip, 0)
        if count >= limit:
            return False
        self.per_ip[ip] = count + 1
        return True

    def release_ip(self, ip: str) -> None:
        """Forget one connection from ``ip``."""
        count = self.per_ip.get(ip, 0) - 1
        if count > 0:
            self.per_ip[ip] = count
        else:
            self.per_ip.pop(ip, None)

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, reuse_address=True, backlog=1024
        )
        self._background = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._backlog_loop()),
        ]

    async def _heartbeat_loop(self) -> None:
        network = self.relay.config.network
        period = min(max(network.heartbeat_interval / 4, 0.05), 15.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections):
                idle = now - conn.last_seen
                if idle > network.heartbeat_timeout:
                    log.info("dropping an unresponsive client", extra={"idle_s": round(idle)})
                    conn.abort()
                elif conn.peer is not None and idle > network.heartbeat_interval:
                    if not conn.ping_sent:
                        conn.ping_sent = True
                        conn.peer.ping()

    async def _backlog_loop(self) -> None:
        limits = self.backlog_limits
        period = min(max(limits.stall_timeout / 4, 0.02), 1.0)
        while True:
            await asyncio.sleep(period)
            self.check_backlogs(time.monotonic())

    def check_backlogs(self, now: float) -> None:
        """Drop the connections above the high-water mark that stopped reading, then the
        largest backlogs while all of them together pass ``max_send_buffer_total``."""
        sizes: list[tuple[Connection, int]] = []
        for conn in list(self.backlogged):
            if conn.peer is None or conn.transport is None or conn.transport.is_closing():
                self.backlogged.discard(conn)
                continue
            size = conn.transport.get_write_buffer_size()
            reason = conn.backlog.check(now, conn.peer.written, size)
            if reason is not None:
                conn.drop_slow(reason)
            else:
                sizes.append((conn, size))
        total_cap = self.backlog_limits.total_cap
        for conn in over_total(sizes, total_cap):
            conn.drop_slow(f"all unsent data passed network.max_send_buffer_total ({total_cap})")

    async def shutdown(self, timeout: float = 8.0) -> None:
        """Stop accepting, close every WebSocket (1001), let in-flight work finish."""
        if self._server is not None:
            self._server.close()
        for task in self._background:
            task.cancel()
        peers = [c.peer for c in self.connections if c.peer is not None]
        workers = [p.worker for p in peers if p.worker is not None]
        for peer in peers:
            for sub_id in list(peer.session.subscriptions):
                peer.send(m.encode_closed(sub_id, "error: relay is shutting down, reconnect"))
            peer.close(1001, "relay is shutting down")
        deadline = time.monotonic() + timeout
        if workers:
            await asyncio.wait(workers, timeout=max(0.1, deadline - time.monotonic() - 1))
        for conn in list(self.connections):
            conn.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=max(0.1, deadline - time.monotonic()))
