"""Reading one HTTP/1.1 request off a connection with ``h11`` (Sans-I/O, no sockets).

The server feeds bytes to :meth:`RequestReader.feed` until it returns a
:class:`ReadRequest` (complete head, and body unless it is a WebSocket upgrade) or a
:class:`ReadError` (the status and message to answer with). ``h11`` enforces the
grammar: whitespace before a colon, a non-digit ``Content-Length``, two ``Host``s, control
bytes in header values and a missing ``Host`` are all refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import h11


@dataclass(frozen=True)
class ReadRequest:
    """A complete request.

    ``target`` is in origin form (an absolute-form target loses its scheme and
    authority); ``headers`` keys are lower-case, repeated headers joined with ``", "``.
    For a WebSocket upgrade, ``head`` is the request head re-serialised for the
    WebSocket protocol and ``rest`` the bytes that followed it (the first frames).
    """

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    upgrade: bool = False
    head: bytes = b""
    rest: bytes = b""


@dataclass(frozen=True)
class ReadError:
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    status: int
    message: str


def origin_form(target: str) -> str:
    """``http://host/p?q`` -> ``/p?q``; other targets unchanged.

    Raises ValueError when the authority cannot be parsed (``http://[::1/``)."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return target


class RequestReader:
    """Parses the single request of a connection (the relay answers with ``Connection: close``)."""

    def __init__(self, max_head: int, max_body: int) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self._request: h11.Request | None = None
        self._target = ""
        self.headers: dict[str, str] | None = None
        """The request's headers (lower-case keys, repeats joined) once its head has been
        read and accepted; None before."""
        self._body = bytearray()

    def feed(self, data: bytes) -> ReadRequest | ReadError | None:
        """Add bytes from the socket (``b""`` at end of stream); None: need more."""
        self._conn.receive_data(data)
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if status == 431:
                    return ReadError(431, f"request head larger than {self.max_head} bytes")
                return ReadError(status, f"malformed HTTP request: {exc}")
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Request):
                outcome = self._on_head(event)
                if outcome is not None:
                    return outcome
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_body:
                    return ReadError(413, f"request body larger than {self.max_body} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return self._complete(bytes(self._body))
            else:  # ConnectionClosed or PAUSED before a complete request
                return ReadError(400, "incomplete HTTP request")

    def _on_head(self, request: h11.Request) -> ReadRequest | ReadError | None:
        raw = list(request.headers.raw_items())
        size = len(request.method) + len(request.target) + 12
        size += sum(len(name) + len(value) + 4 for name, value in raw)
        if size > self.max_head:
            # h11 bounds only an incomplete head; a large one sent in one write is whole.
            return ReadError(431, f"request head larger than {self.max_head} bytes")
        try:
            self._target = origin_form(request.target.decode("latin-1"))
        except ValueError:  # urlsplit refuses the authority of an absolute-form target
            return ReadError(400, "malformed HTTP request: bad request target")
        self._request = request
        headers: dict[str, str] = {}
        for name, value in request.headers:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers
        if headers.get("upgrade", "").lower() == "websocket":
            return self._complete(b"", raw)
        length = headers.get("content-length")
        if length is not None and int(length) > self.max_body:
            return ReadError(413, f"request body larger than {self.max_body} bytes")
        return None

    def _complete(
        self, body: bytes, raw: list[tuple[bytes, bytes]] | None = None
    ) -> ReadRequest | ReadError:
        request, headers, target = self._request, self.headers, self._target
        assert request is not None and headers is not None
        method = request.method.decode("ascii")
        if raw is None:
            return ReadRequest(method, target, headers, body)
        version = request.http_version.decode("ascii")
        lines = [f"{method} {target} HTTP/{version}".encode("latin-1")]
        lines += [name + b": " + value for name, value in raw]
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        rest, _ = self._conn.trailing_data
        return ReadRequest(method, target, headers, upgrade=True, head=head, rest=rest)
