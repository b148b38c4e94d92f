"""KeyPackages (kind 443): ingest checks (R-M1) and the fetch/consume plan (R-M1b).

Pure functions; the stores run :func:`plan_fetch` inside their transactions so that
every backend consumes key packages the same way.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from relay.core.event import Event, parse_uint
from relay.core.reasons import Rejection, invalid

HARD_MAX_PER_QUERY = 2
SUPPORTED_PROTOCOL_VERSION = "1.0"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+\Z")
_B64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}\Z")


def decode_content(content: str, encoding: str | None) -> bytes | None:
    """The key package bytes, or None when empty or not valid in ``encoding``.

    ``hex`` (the default) is strict: an even number of hex digits. ``base64`` accepts
    the standard and URL-safe alphabets, padded or not.
    """
    if not content:
        return None
    if encoding is None or encoding == "hex":
        return bytes.fromhex(content) if _HEX.match(content) else None
    if encoding != "base64" or not _B64.match(content):
        return None
    if ("-" in content or "_" in content) and ("+" in content or "/" in content):
        return None  # mixed alphabets
    body = content.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        data = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        return None
    return data or None


def keypackage_expiry(event: Event, *, now: int, ttl: int) -> int | Rejection:
    """Validate a kind-443 event (R-M1); returns when it expires, or why it is refused.

    ``expires_at`` is the ``exp`` tag capped at ``now + ttl``, or ``now + ttl``.
    """
    # Every p tag, not only the first: a second one naming someone else is the same lie.
    if any(owner != event.pubkey for owner in event.tag_values("p")):
        return invalid("keypackage owner mismatch")
    cap = now + ttl
    expires_at = cap
    exp = event.first_tag_value("exp")
    if exp is not None:
        exp_at = parse_uint(exp)
        if exp_at is None:
            return invalid("keypackage exp must be unix seconds")
        if exp_at <= now:
            return invalid("keypackage expired")
        expires_at = min(exp_at, cap)
    version = event.first_tag_value("mls_protocol_version")
    if version is not None and version != SUPPORTED_PROTOCOL_VERSION:
        return invalid(f"unsupported mls_protocol_version {version[:16]!r}")
    if decode_content(event.content, event.first_tag_value("encoding")) is None:
        return invalid("keypackage content")
    return expires_at


@dataclass(frozen=True, slots=True)
class StoredKeyPackage:
    """What a store knows about one live key package."""

    event_id: str
    owner: str
    created_at: int
    expires_at: int
    pending_deletion: bool = False


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """Which key packages of one owner to serve, and which of those to delete."""

    serve: tuple[str, ...]
    consume: tuple[str, ...]
    last_resort: str | None


def plan_fetch(
    available: Sequence[StoredKeyPackage],
    *,
    per_author: int,
    now: int,
    consume: bool = True,
    matching: Collection[str] | None = None,
) -> FetchPlan:
    """R-M1b for one owner: oldest first, at most ``per_author`` (hard cap 2), unexpired.

    ``available`` is every key package the owner holds; ``matching`` (event ids, None:
    all) narrows what may be served to those the fetch's filter matches (``ids``,
    ``since``, …). Every served key package is consumed except the owner's last one
    overall, which is kept ("last resort") and may be served again: narrowing the filter
    never makes a key package look like the last one. Key packages already pending
    deletion are served only when the owner has nothing else.
    """
    per_author = max(1, min(per_author, HARD_MAX_PER_QUERY))
    live = sorted(
        (kp for kp in available if kp.expires_at > now),
        key=lambda kp: (kp.created_at, kp.event_id),
    )
    fresh = [kp for kp in live if not kp.pending_deletion]
    candidates = fresh or live
    servable = candidates if matching is None else [k for k in candidates if k.event_id in matching]
    served = servable[:per_author]
    remaining = len(candidates)
    consumed: list[str] = []
    last_resort = None
    for kp in served:
        if consume and remaining > 1:
            consumed.append(kp.event_id)
            remaining -= 1
        else:
            last_resort = kp.event_id
    return FetchPlan(tuple(kp.event_id for kp in served), tuple(consumed), last_resort)


def evictions(owned: Sequence[StoredKeyPackage], *, max_per_owner: int) -> list[str]:
    """Oldest key packages to delete so an owner keeps at most ``max_per_owner``."""
    ordered = sorted(owned, key=lambda kp: (kp.created_at, kp.event_id))
    excess = len(ordered) - max_per_owner
    return [kp.event_id for kp in ordered[:excess]] if excess > 0 else []
