"""A stdlib HTTP server on 127.0.0.1 for Google REST API stand-ins.

APIs register routes (method + regex on the unquoted path); handlers receive the match,
the query and the JSON body and return ``(status, document)``. The server records every
request (:attr:`RestServer.requests`) so tests can assert what the real client libraries
sent, and can inject errors shaped like Google's (``{"error": {"code", "message",
"status", "details"}}``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
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


@dataclass
class _Injected:
    method: str
    pattern: re.Pattern[str]
    error: ApiError
    times: int


@dataclass
class RestServer:
    """The HTTP server; start with :meth:`start`, stop with :meth:`stop`."""

    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
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
        self.routes.append((method, re.compile(pattern), handler))

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

    def dispatch(self, method: str, target: str, raw: bytes) -> tuple[int, Json]:
        """Route one request; every failure is a Google-shaped error."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, ApiError(400, "body is not JSON").document()
        with self.lock:
            held = [e for m, p, e in self._delays if m == method and p.fullmatch(path)]
        for release in held:  # outside the lock: other requests go on
            release.wait()
        with self.lock:
            self.requests.append(Request(method, path, query, body))
            for injected in self._injected:
                if injected.method == method and injected.pattern.fullmatch(path):
                    injected.times -= 1
                    if injected.times <= 0:
                        self._injected.remove(injected)
                    return injected.error.code, injected.error.document()
            for route_method, pattern, handler in self.routes:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    try:
                        return handler(match, query, body)
                    except ApiError as exc:
                        return exc.code, exc.document()
        return 404, ApiError(404, f"stand-in has no route for {method} {path}").document()

    def start(self) -> None:
        """Listen on 127.0.0.1 on a free port, in a daemon thread."""
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, document = server.dispatch(self.command, self.path, raw)
                data = json.dumps(document).encode()
                self.send_response(status)
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
