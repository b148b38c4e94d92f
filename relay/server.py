"""The only module that touches sockets: HTTP and WebSocket on one asyncio port.

Each TCP connection is an :class:`asyncio.Protocol`. It reads one HTTP request; a
WebSocket upgrade is handed to websockets' Sans-I/O ``ServerProtocol`` and every
complete text message goes to the relay application in order, one at a time, through
a small inbox (reading pauses while the inbox is full). Anything else is answered by
``relay.http`` and the connection closes.

Why not ``websockets.asyncio.server.serve``: its handshake parser refuses request
bodies, and the REST API needs POST. Driving the Sans-I/O protocol directly also lets
the relay bound each connection's send buffer exactly (R-P7): a client whose unsent
data exceeds ``network.max_send_buffer`` is dropped instead of stalling anyone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from relay.app import Relay
from relay.core import messages as m
from relay.core.policy import ip_permitted
from relay.core.session import Session
from relay.http import handle_http
from relay.http_messages import HttpRequest, HttpResponse, json_response

log = logging.getLogger("relay.server")

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
INBOX_HIGH_WATER = 64
INBOX_LOW_WATER = 16
CLOSE_TIMEOUT = 2.0


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


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    try:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        method, target, version = request_line.split(" ", 2)
    except ValueError:
        return None
    if not version.startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, target, headers


class WebSocketPeer:
    """The relay side of one open WebSocket: the Sans-I/O protocol plus the session.

    Implements :class:`relay.app.Peer`. Frames are handled one at a time, in order, by
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

    @property
    def is_open(self) -> bool:
        """True while frames can still be sent."""
        return not self.closing and self.ws.state is State.OPEN

    def send(self, data: bytes) -> None:
        """Send one text frame; drops the client if its unsent data exceeds the limit."""
        self.send_many((data,))

    def send_many(self, frames: Iterable[bytes]) -> None:
        """Send text frames in one write (one system call for a whole REQ answer)."""
        if not self.is_open:
            return
        for data in frames:
            self.ws.send_text(data)
        self.flush()
        if self.transport.get_write_buffer_size() > self.relay.config.network.max_send_buffer:
            self.relay.metrics.slow_consumers.inc()
            log.warning("dropping a client that stopped reading", extra={"ip": self.conn.ip})
            self.conn.abort()

    def receive(self, data: bytes) -> None:
        """Feed bytes from the socket."""
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
        self.flush()

    def receive_eof(self) -> None:
        """The client half-closed the TCP connection."""
        self.ws.receive_eof()
        self.flush()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._on_message(bytes(frame.data))
            else:
                self.fragment_opcode, self.fragments = opcode, [bytes(frame.data)]
        elif opcode is Opcode.CONT and self.fragment_opcode is not None:
            self.fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self.fragments)
                self.fragment_opcode, self.fragments = None, []
                self._on_message(data)

    def _on_message(self, data: bytes) -> None:
        # Binary frames are read like text (the parser rejects non-UTF-8 JSON precisely):
        # some clients send JSON in binary frames, and refusing them helps no one.
        self.inbox.put_nowait(data)
        if self.inbox.qsize() >= INBOX_HIGH_WATER and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True

    async def work(self) -> None:
        """Handle this connection's messages one at a time, in order, until it closes."""
        while True:
            frame = await self.inbox.get()
            if frame is None:
                return
            try:
                await self.relay.handle_frame(self, frame)
            except Exception:
                log.exception("internal error while handling a message")
                self.send(m.encode_notice("error: internal error"))
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
        self.relay.unregister(self)
        self.inbox.put_nowait(None)


class Connection(asyncio.Protocol):
    """One TCP connection: an HTTP request, possibly upgraded to a :class:`WebSocketPeer`."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.relay = server.relay
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.peer: WebSocketPeer | None = None
        self.upgraded = False
        self.ip = ""
        self.last_seen = time.monotonic()
        self.ping_sent = False

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = typing.cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.ping_sent = False
        if self.peer is not None:
            self.peer.receive(data)
        elif not self.upgraded:
            self.buffer += data
            self._try_http()

    def eof_received(self) -> bool | None:
        if self.peer is not None:
            self.peer.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.peer is not None:
            self.peer.closed()

    def abort(self) -> None:
        """Drop the TCP connection now."""
        if self.peer is not None:
            self.peer.closing = True
        if self.transport is not None:
            self.transport.abort()

    # --- HTTP --------------------------------------------------------------------------

    def _try_http(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                self._respond(json_response(431, {"error": "request headers too large"}))
            return
        head = bytes(self.buffer[: end + 4])
        parsed = _parse_head(head[:-4])
        if parsed is None:
            self._respond(json_response(400, {"error": "malformed HTTP request"}))
            return
        method, target, headers = parsed
        network = self.relay.config.network
        self.ip = client_ip(self.ip, headers, network.real_ip_header, network.trusted_proxy_hops)
        if headers.get("upgrade", "").lower() == "websocket":
            rest = bytes(self.buffer[end + 4 :])
            self.buffer.clear()
            self.upgraded = True
            self._upgrade(head, rest)
            return
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or "transfer-encoding" in headers:
            self._respond(json_response(400, {"error": "a body needs a Content-Length"}))
            return
        if length > MAX_BODY_BYTES:
            self._respond(json_response(413, {"error": "request body too large"}))
            return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        self.buffer.clear()
        self.upgraded = True  # one request per connection: ignore anything after it
        request = HttpRequest(method, target, headers, body, self.ip)
        self.server.spawn(self._serve_http(request))

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

    def _upgrade(self, head: bytes, rest: bytes) -> None:
        relay = self.relay
        assert self.transport is not None
        max_size = max(2 * relay.config.limitation.max_message_length, 64 * 1024)
        ws = ServerProtocol(max_size=max_size)
        ws.receive_data(head)
        request = next((e for e in ws.events_received() if isinstance(e, Request)), None)
        if request is None:
            self._respond(json_response(400, {"error": "malformed WebSocket handshake"}))
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
        relay.register(peer)
        peer.worker = self.server.spawn(peer.work())
        for action in peer.session.greeting():
            self.server.spawn(relay.execute(peer, action))
        if rest:
            peer.receive(rest)

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
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

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

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, reuse_address=True, backlog=1024
        )
        self._heartbeat = asyncio.create_task(self._heartbeat_loop())

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

    async def shutdown(self, timeout: float = 8.0) -> None:
        """Stop accepting, close every WebSocket (1001), let in-flight work finish."""
        if self._server is not None:
            self._server.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
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
