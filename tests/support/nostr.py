"""Test helpers: keys, signed events and a small JSON WebSocket client for the relay."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from relay.core.event import Event, sign_event
from relay.core.event import pubkey_of as _pubkey_of

# Generous: only reached when something is broken. Tests never assert durations.
TIMEOUT = 5.0


@dataclass(frozen=True)
class Keys:
    """A test identity."""

    secret: bytes = field(default_factory=lambda: os.urandom(32))

    @property
    def pubkey(self) -> str:
        return _pubkey_of(self.secret)

    def sign(
        self,
        kind: int = 1,
        content: str = "",
        tags: list[list[str]] | None = None,
        created_at: int | None = None,
    ) -> Event:
        return sign_event(
            self.secret,
            kind=kind,
            content=content,
            tags=tags,
            created_at=int(time.time()) if created_at is None else created_at,
        )

    def auth_event(self, challenge: str, relay_url: str = "ws://127.0.0.1") -> Event:
        return self.sign(22242, "", [["relay", relay_url], ["challenge", challenge]])


def lower_than(keys: Keys) -> Keys:
    """A fresh key whose pubkey sorts before ``keys``' (limits once keyed on the lowest)."""
    while True:
        candidate = Keys()
        if candidate.pubkey < keys.pubkey:
            return candidate


def event_frame(event: Event) -> str:
    return '["EVENT",' + event.raw.decode() + "]"


class RelayClient:
    """A real WebSocket client speaking JSON arrays, with a receive timeout."""

    def __init__(self, ws: ClientConnection, relay_url: str = "ws://127.0.0.1") -> None:
        self.ws = ws
        self.relay_url = relay_url
        self.challenge: str | None = None
        self._pending: list[list[Any]] = []

    @classmethod
    async def open(cls, url: str, *, relay_url: str | None = None, **kwargs: Any) -> RelayClient:
        """Connect to ``url``; AUTH events name ``relay_url`` (default: ``url``), as
        NIP-42 clients name the relay they dialled."""
        ws = await connect(url, open_timeout=TIMEOUT, **kwargs)
        return cls(ws, relay_url or url)

    async def send(self, *message: Any) -> None:
        await self.ws.send(orjson.dumps(list(message)).decode())

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv(self, timeout: float = TIMEOUT) -> list[Any]:
        if self._pending:
            return self._pending.pop(0)
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            msg = orjson.loads(raw)
            if msg[0] == "AUTH" and self.challenge is None:
                self.challenge = msg[1]
                continue
            reply: list[Any] = msg
            return reply

    async def recv_until(self, verb: str, timeout: float = TIMEOUT) -> list[Any]:
        """Receive (skipping other messages) until one starting with ``verb``."""
        while True:
            msg = await self.recv(timeout)
            if msg[0] == verb:
                return msg

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        """True if no message arrives within ``seconds`` (used to prove non-delivery)."""
        try:
            msg = await self.recv(seconds)
        except TimeoutError:
            return True
        self._pending.insert(0, msg)
        return False

    async def get_challenge(self) -> str:
        while self.challenge is None:
            msg = orjson.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if msg[0] == "AUTH":
                self.challenge = msg[1]
            else:
                self._pending.append(msg)
        return self.challenge

    async def _answer(
        self, is_answer: Callable[[list[Any]], bool], timeout: float = TIMEOUT
    ) -> list[Any]:
        """The first message (pending ones first) for which ``is_answer`` is true; the
        others are kept, in order, for later reads."""
        skipped: list[list[Any]] = []
        try:
            while True:
                msg = await self.recv(timeout)
                if is_answer(msg):
                    return msg
                skipped.append(msg)
        finally:
            self._pending[:0] = skipped

    async def publish(self, event: Event, timeout: float = TIMEOUT) -> list[Any]:
        await self.send_raw(event_frame(event))
        return await self._answer(lambda msg: msg[0] == "OK" and msg[1] == event.id, timeout)

    async def authenticate(self, keys: Keys, relay_url: str | None = None) -> list[Any]:
        challenge = await self.get_challenge()
        event = keys.auth_event(challenge, relay_url or self.relay_url)
        await self.send("AUTH", event.to_dict())
        return await self._answer(lambda msg: msg[0] == "OK" and msg[1] == event.id)

    async def req(
        self, sub_id: str, *filters: dict[str, Any], timeout: float = TIMEOUT
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        """Send REQ; return (stored events, the EOSE or CLOSED message that ended them),
        each message awaited at most ``timeout`` seconds."""
        await self.send("REQ", sub_id, *filters)
        events: list[dict[str, Any]] = []
        skipped: list[list[Any]] = []
        try:
            while True:
                msg = await self.recv(timeout)
                if msg[0] == "EVENT" and msg[1] == sub_id:
                    events.append(msg[2])
                elif msg[0] in ("EOSE", "CLOSED") and msg[1] == sub_id:
                    return events, msg
                else:
                    skipped.append(msg)
        finally:
            self._pending[:0] = skipped

    async def close(self) -> None:
        await self.ws.close()


class RawClient:
    """A WebSocket client on a plain socket that does nothing on its own.

    Unlike the websockets client it never reads in the background, never answers pings
    and buffers nothing: it is how tests play a client that stopped reading or went
    silent. ``receive_buffer`` shrinks the socket's receive buffer so that a client
    that does not read fills up quickly.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self._frames: list[Any] = []

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        receive_buffer: int | None = None,
        without: tuple[str, ...] = (),
    ) -> RawClient:
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        protocol = ClientProtocol(uri, max_size=None)
        request = protocol.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        for name in without:
            del request.headers[name]
        protocol.send_request(request)
        client = cls(reader, writer, protocol)
        client._flush()
        while protocol.handshake_exc is None and protocol.state is not State.OPEN:
            data = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            if not data:
                protocol.receive_eof()
                break
            protocol.receive_data(data)
            client._collect()
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        return client

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.writer.write(chunk)

    def _collect(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._frames.append(orjson.loads(event.data))

    async def send(self, *message: Any) -> None:
        self.protocol.send_text(orjson.dumps(list(message)))
        self._flush()
        await self.writer.drain()

    async def send_many(self, messages: Sequence[Sequence[Any]]) -> None:
        """Send every message in one TCP write: the relay finds them waiting together,
        as from a client that pipelines."""
        for message in messages:
            self.protocol.send_text(orjson.dumps(list(message)))
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()

    async def recv(self, timeout: float = TIMEOUT) -> list[Any]:
        """The next text message (pings are read but deliberately not answered)."""
        while not self._frames:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionError("connection closed by the relay")
            self.protocol.receive_data(data)
            self._collect()
            # Drop any automatic pong websockets queued: this client stays silent.
            self.protocol.data_to_send()
        frame: list[Any] = self._frames.pop(0)
        return frame

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        """Read and discard until the relay closes the TCP connection."""

        async def drain() -> None:
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return
                if not data:
                    return

        try:
            await asyncio.wait_for(drain(), timeout)
        finally:
            self.writer.close()

    def close(self) -> None:
        self.writer.close()
