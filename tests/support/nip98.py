"""Test helper: NIP-98 signed calls to the MLS REST API over a real socket."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from relay.core.event import Event
from tests.support.http import HttpReply, http_request
from tests.support.nostr import Keys


def auth_event(
    keys: Keys,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    kind: int = 27235,
    created_at: int | None = None,
) -> Event:
    """A kind-27235 event for ``method url`` (with the payload hash when there is a body)."""
    tags = [["u", url], ["method", method]]
    if body:
        tags.append(["payload", hashlib.sha256(body).hexdigest()])
    return keys.sign(kind, "", tags, created_at=created_at)


def header(event: Event) -> dict[str, str]:
    """The ``Authorization: Nostr <base64>`` header carrying ``event``."""
    return {"Authorization": "Nostr " + base64.b64encode(event.raw).decode()}


@dataclass(frozen=True)
class Api:
    """The REST API's base URL on the socket (``local``) and as the public URL that NIP-98
    ``u`` tags name (``public``, from ``information.relay_url``), as behind a proxy."""

    local: str
    public: str


async def call(
    base: Api | str,
    keys: Keys | None,
    method: str,
    path: str,
    body: Any = None,
) -> tuple[int, Any]:
    """Call the API as ``keys`` (None: no Authorization header); returns (status, JSON).
    A plain string base is both where the request goes and what the token names."""
    api = base if isinstance(base, Api) else Api(base, base)
    data = orjson.dumps(body) if body is not None else b""
    headers = {"Content-Type": "application/json"} if data else {}
    if keys is not None:
        headers |= header(auth_event(keys, method, api.public + path, data))
    reply: HttpReply = await http_request(
        api.local + path, method=method, headers=headers, body=data
    )
    return reply.status, reply.json()
