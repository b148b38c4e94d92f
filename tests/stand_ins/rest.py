"""A stdlib HTTP server on 127.0.0.1 for Google REST API stand-ins.

APIs register routes (method + regex on the unquoted path); handlers receive the match,
the query and the JSON body and return ``(status, document)``. Media routes (object
downloads and uploads) receive the whole :class:`Request`, raw bytes and headers included,
and may answer with :class:`Media` instead of a JSON document. The server records every
request (:attr:`RestServer.requests`) so tests can assert what the real client libraries
sent, and can inject errors shaped like Google's (``{"error": {"code", "message",
"status", "details"}}``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]
Handler = Callable[[re.Match[str], dict[str, str], Json], tuple[int, Json]]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """Raised by handlers: becomes a Google-shaped error response."""

    def __init__(self, code: int, message: str, details: list[Json] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    def document(self) -> Json:
        """The JSON error body."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
                "details": self.details,
            }
        }


def permission_denied(permission: str, resource: str) -> ApiError:
    """A 403 as Google sends it, with the missing permission in an ErrorInfo."""
    return ApiError(
        403,
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "googleapis.com",
                "metadata": {"permission": permission, "resource": resource},
            }
        ],
    )


@dataclass(frozen=True)
class Request:
    """One request as received (path unquoted, query flattened)."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    """The JSON body; ``{}`` for media routes (see :attr:`raw`)."""
    raw: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    query_lists: Mapping[str, list[str]] = field(default_factory=dict)
    """Every value of each query parameter (``query`` keeps the last)."""


@dataclass(frozen=True)
class Media:
    """A response body that is not a JSON document (an object's bytes)."""

    data: bytes
    content_type: str = "application/octet-stream"
    headers: Mapping[str, str] = field(default_factory=dict)


Reply = tuple[int, Json | Media]
MediaHandler = Callable[[re.Match[str], Request], Reply]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler | None = None
    media: MediaHandler | None = None


@dataclass
class _Injected:
    method: str
    pattern: re.Pattern[str]
    error: ApiError
    times: int


@dataclass
class RestServer:
    """The HTTP server; start with :meth:`start`, stop with :meth:`stop`."""

    routes: list[_Route] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _injected: list[_Injected] = field(default_factory=list)
    _delays: list[tuple[str, re.Pattern[str], threading.Event]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` on paths fully matching ``pattern``."""
        self.routes.append(_Route(method, re.compile(pattern), handler=handler))

    def media_route(self, method: str, pattern: str, handler: MediaHandler) -> None:
        """Like :meth:`route`, for bodies that are not JSON: the handler gets the request."""
        self.routes.append(_Route(method, re.compile(pattern), media=handler))

    def fail(self, method: str, pattern: str, error: ApiError, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``error``."""
        with self.lock:
            self._injected.append(_Injected(method, re.compile(pattern), error, times))

    def hold(self, method: str, pattern: str) -> threading.Event:
        """Keep matching requests waiting until the returned event is set (a hung API)."""
        release = threading.Event()
        with self.lock:
            self._delays.append((method, re.compile(pattern), release))
        return release

    def calls(self, method: str, pattern: str) -> list[Request]:
        """Recorded requests matching ``method`` and ``pattern``."""
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    def _find(self, method: str, path: str) -> tuple[_Route, re.Match[str]] | None:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match and route.method == method:
                return route, match
        return None

    def dispatch(
        self, method: str, target: str, raw: bytes, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Route one request; every failure is a Google-shaped error."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        lists = parse_qs(parts.query)
        query = {k: v[-1] for k, v in lists.items()}
        found = self._find(method, path)
        body: Json = {}
        if found is None or found[0].media is None:
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return 400, ApiError(400, "body is not JSON").document()
        request = Request(method, path, query, body, raw, dict(headers or {}), lists)
        with self.lock:
            held = [e for m, p, e in self._delays if m == method and p.fullmatch(path)]
        for release in held:  # outside the lock: other requests go on
            release.wait()
        with self.lock:
            self.requests.append(request)
            for injected in self._injected:
                if injected.method == method and injected.pattern.fullmatch(path):
                    injected.times -= 1
                    if injected.times <= 0:
                        self._injected.remove(injected)
                    return injected.error.code, injected.error.document()
            if found is None:
                return 404, ApiError(404, f"stand-in has no route for {method} {path}").document()
            route, match = found
            try:
                if route.media is not None:
                    return route.media(match, request)
                assert route.handler is not None
                return route.handler(match, query, body)
            except ApiError as exc:
                return exc.code, exc.document()

    def start(self) -> None:
        """Listen on 127.0.0.1 on a free port, in a daemon thread."""
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply = server.dispatch(self.command, self.path, raw, headers)
                self.send_response(status)
                if isinstance(reply, Media):
                    data = reply.data
                    self.send_header("content-type", reply.content_type)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                else:
                    data = json.dumps(reply).encode()
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        """Release held requests and stop listening."""
        for _, _, release in self._delays:
            release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
