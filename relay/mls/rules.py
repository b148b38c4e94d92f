"""The MLS gateway's rule functions for the relay :class:`~relay.core.policy.Policy`.

Write rules validate each MLS kind synchronously (R-M1 … R-M8); read rules decide who
may receive restricted kinds (R-A3), the same for stored results, live fan-out, COUNT
and the REST API. Group membership comes from a :class:`GroupDirectory`, the gateway's
in-memory copy of the stored group states. A roster-less group's id is a capability
(R-M11): the 445 rule also lets through a request that names the group with ``#h``
(:meth:`~relay.core.policy.Viewer.names`); the capability needs no stored state beyond
the group states themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from relay.core.event import Event, parse_uint
from relay.core.filters import Filter
from relay.core.policy import EventRule, ReadRule, ReqRule, Viewer
from relay.core.reasons import Rejection, auth_required, invalid, restricted
from relay.mls import kinds
from relay.mls.groups import (
    GroupState,
    check_roster_shape,
    group_id_problem,
    merged,
    open_to_named,
)
from relay.mls.keypackages import keypackage_expiry


class GroupDirectory:
    """Current group states, with member sets cached for fan-out."""

    def __init__(
        self,
        *,
        include_invitees: bool = True,
        global_admins: frozenset[str] = frozenset(),
        id_capability: bool = True,
    ) -> None:
        self.include_invitees = include_invitees
        self.global_admins = global_admins
        self.id_capability = id_capability
        self._states: dict[str, GroupState] = {}
        self._members: dict[str, frozenset[str]] = {}
        self._groups_of: dict[str, set[str]] = {}

    def update(self, state: GroupState) -> None:
        """Replace what is known about ``state.group_id``."""
        group_id = state.group_id
        before = self._members.get(group_id, frozenset())
        after = state.member_set(
            include_invitees=self.include_invitees, global_admins=self.global_admins
        )
        self._states[group_id] = state
        self._members[group_id] = after
        for pubkey in before - after:
            groups = self._groups_of[pubkey]
            groups.discard(group_id)
            if not groups:
                del self._groups_of[pubkey]
        for pubkey in after - before:
            self._groups_of.setdefault(pubkey, set()).add(group_id)

    def groups_of(self, pubkeys: frozenset[str]) -> frozenset[str]:
        """The known groups any of ``pubkeys`` is a member of (reverse of :meth:`members`)."""
        found: set[str] = set()
        for pubkey in pubkeys:
            found |= self._groups_of.get(pubkey, set())
        return frozenset(found)

    def merge(self, state: GroupState) -> GroupState:
        """Learn ``state`` unless what is known is later (:func:`merged`); returns the
        state now known."""
        known = merged(self._states.get(state.group_id), state)
        self.update(known)
        return known

    def get(self, group_id: str) -> GroupState | None:
        """The state of a group, or None if unknown."""
        return self._states.get(group_id)

    def members(self, group_id: str | None) -> frozenset[str]:
        """Who may read the group's 445/450 events (global admins for unknown groups)."""
        if group_id is None:
            return frozenset()
        return self._members.get(group_id, self.global_admins)

    def open_to_named(self, group_id: str) -> bool:
        """R-M11: True if a connection that names ``group_id`` explicitly may read and
        publish its 445s (a roster-less group with a capability id, unless
        ``membership = "roster"`` turned the capability off)."""
        return self.id_capability and open_to_named(self._states.get(group_id), group_id)

    def __len__(self) -> int:
        return len(self._states)


# --- write rules ---------------------------------------------------------------------


def require_auth_for_restricted_writes() -> EventRule:
    """R-A2: MLS kinds need an authenticated connection (delivery "enforce"). A key
    package is accepted only from its owner's connection: otherwise anyone who fetched
    (and so consumed) one could publish it again and undo the consumption (R-M1b)."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if event.kind in kinds.RESTRICTED and not viewer.authenticated:
            return auth_required(f"kind {event.kind} requires an authenticated connection")
        if event.kind == kinds.KEYPACKAGE and event.pubkey not in viewer.pubkeys:
            return restricted("key packages are accepted only from their owner's connection")
        return None

    return rule


def _has_ws_relay(event: Event) -> bool:
    for url in event.tag_values("relay"):
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.scheme in ("ws", "wss") and parts.hostname:
            return True
    return False


def _check_shape(event: Event, now: int, keypackage_ttl: int) -> Rejection | None:
    kind = event.kind
    if kind == kinds.WELCOME:
        return invalid("welcome must be gift-wrapped")
    if kind == kinds.KEYPACKAGE:
        expiry = keypackage_expiry(event, now=now, ttl=keypackage_ttl)
        return expiry if isinstance(expiry, Rejection) else None
    if kind in (kinds.GROUP_MESSAGE, kinds.ROSTER) and len(event.tag_values("h")) > 1:
        # Rules judge the first h; "#h" filters match any, so a second h would let a
        # member of one group write into another group's feed.
        return invalid("exactly one h tag is allowed")
    if kind == kinds.GROUP_MESSAGE:
        if (problem := group_id_problem(event.first_tag_value("h"))) is not None:
            return problem
        epoch = event.first_tag_value("k")
        if epoch is not None and parse_uint(epoch) is None:
            return invalid("k (epoch) must be a non-negative integer")
        return None
    if kind == kinds.NOISE_DM:
        if len(event.tag_values("p")) != 1:
            return invalid("noise DM needs exactly one p tag")
        version = event.first_tag_value("v")
        if version is not None and version != "noise.1":
            return invalid(f"unsupported noise version {version[:16]!r}")
        return None
    if kind == kinds.GIFT_WRAP:
        return None if event.tag_values("p") else invalid("gift wrap needs a p tag")
    if kind == kinds.ROSTER:
        return check_roster_shape(event)
    if kind == kinds.KEYPACKAGE_RELAYS and not _has_ws_relay(event):
        return invalid("keypackage relay list needs a relay tag with a ws:// or wss:// URL")
    return None


def validate_mls_events(keypackage_ttl: int) -> EventRule:
    """R-M1 … R-M8: the synchronous shape checks of every MLS kind."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        return _check_shape(event, now, keypackage_ttl)

    return rule


def refuse_older_than_archive(archive_ttl: int) -> EventRule:
    """R-M9: a 445/446/1059 the archive sweep would already delete (``created_at`` more
    than ``archive_ttl`` seconds ago) is refused instead of acknowledged and then lost."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if event.kind in kinds.ARCHIVED and event.created_at < now - archive_ttl:
            return invalid("older than the message archive")
        return None

    return rule


# --- read rules ----------------------------------------------------------------------


def require_auth_for_restricted_reads() -> ReqRule:
    """R-A3: a REQ/COUNT that names a restricted kind needs an authenticated connection."""

    def rule(filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        if viewer.authenticated:
            return None
        for f in filters:
            asked = f.kinds & kinds.RESTRICTED if f.kinds is not None else frozenset()
            if asked:
                return auth_required(f"kind {min(asked)} requires an authenticated connection")
        return None

    return rule


def restricted_delivery(directory: GroupDirectory) -> ReadRule:
    """R-A3: who may receive each restricted kind."""
    by_kind: dict[int, Callable[[Event, Viewer], bool]] = {
        kinds.KEYPACKAGE: lambda e, v: v.authenticated,
        kinds.KEYPACKAGE_RELAYS: lambda e, v: v.authenticated,
        kinds.GROUP_MESSAGE: lambda e, v: _reads_group(directory, e, v),
        kinds.ROSTER: lambda e, v: bool(directory.members(e.first_tag_value("h")) & v.pubkeys),
        kinds.NOISE_DM: _addressed,
        kinds.GIFT_WRAP: _addressed,
    }

    def rule(event: Event, viewer: Viewer) -> bool:
        check = by_kind.get(event.kind)
        return True if check is None else check(event, viewer)

    return rule


def _reads_group(directory: GroupDirectory, event: Event, viewer: Viewer) -> bool:
    """445: recorded members of group ``h``; for a group open to those who name it
    (R-M11), also an authenticated connection whose request names it with ``#h``. A
    request that does not name the group never returns or counts it."""
    group_id = event.first_tag_value("h")
    if directory.members(group_id) & viewer.pubkeys:
        return True
    return (
        group_id is not None
        and viewer.authenticated
        and viewer.names("h", group_id)
        and directory.open_to_named(group_id)
    )


def _addressed(event: Event, viewer: Viewer) -> bool:
    """446/1059: the ``p`` recipients, the author, and the connection that published it."""
    if event.id in viewer.own_events or event.pubkey in viewer.pubkeys:
        return True
    return any(p in viewer.pubkeys for p in event.tag_values("p"))


def own_keypackages_only() -> ReadRule:
    """Outside a consuming fetch (live fan-out, COUNT), a 443 is visible to its owner only."""

    def rule(event: Event, viewer: Viewer) -> bool:
        return event.kind != kinds.KEYPACKAGE or event.pubkey in viewer.pubkeys

    return rule
