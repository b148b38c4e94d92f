"""HTTP request/response values shared by the server and the HTTP handlers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson

CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request. ``headers`` keys are lower-case."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""
    client_ip: str = ""

    @property
    def path(self) -> str:
        """The path without the query string."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        """Decoded query parameters."""
        return parse_qs(self.target.split("?", 1)[1]) if "?" in self.target else {}


@dataclass(frozen=True)
class HttpResponse:
    """One HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_response(status: int, document: object, *, cors: bool = False) -> HttpResponse:
    """A JSON response (with CORS headers when ``cors``)."""
    return HttpResponse(
        status, orjson.dumps(document), "application/json", CORS_HEADERS if cors else ()
    )
