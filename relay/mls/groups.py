"""Group registry and membership (R-M3, R-M5, R-M6, R-M7, R-M11) as pure state transitions.

A store loads the :class:`GroupState` of group ``h`` inside a transaction, calls one of
the ``on_*`` functions, and writes the result (or returns the rejection) atomically, so
roster sequence numbers and memberships cannot race.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from relay.core.event import Event, parse_uint
from relay.core.reasons import Rejection, auth_required, invalid, restricted

ROSTER_OPS = frozenset({"bootstrap", "add", "remove", "promote", "demote", "replace"})
# At least 32 bytes in hex: a Marmot nostr_group_id is 32 random bytes. Anything shorter
# may be guessed, so it never serves as a capability.
_CAPABILITY_ID = re.compile(r"(?:[0-9a-fA-F]{2}){32,}\Z")
GROUP_ID = re.compile(r"[\x21-\x7e]{1,256}\Z")
"""A group id (``h``): 1 to 256 printable ASCII characters without spaces. Every id a
client derives (hex, base64, a UUID) fits; ids of any length or with control and
direction characters would each hold memory in the group registry and mislead logs."""


def group_id_problem(group_id: str | None) -> Rejection | None:
    """``invalid: missing h`` or ``invalid: bad group id …`` for an ``h`` value that is not
    a :data:`GROUP_ID`; None when it is one."""
    if not group_id:
        return invalid("missing h")
    if not GROUP_ID.match(group_id):
        return invalid("bad group id: use 1 to 256 printable ASCII characters, no spaces")
    return None


def is_capability_id(group_id: str) -> bool:
    """True if ``group_id`` is long and random-looking enough to act as a capability
    (at least 32 bytes of hex, like a Marmot ``nostr_group_id``)."""
    return _CAPABILITY_ID.match(group_id) is not None


@dataclass(frozen=True)
class GroupState:
    """What the relay knows about one MLS group (never its content)."""

    group_id: str
    owner: str | None = None
    admins: frozenset[str] = field(default_factory=frozenset)
    members: frozenset[str] = field(default_factory=frozenset)
    invitees: frozenset[str] = field(default_factory=frozenset)
    removed: frozenset[str] = field(default_factory=frozenset)
    last_seq: int | None = None
    last_epoch: int | None = None

    @property
    def has_roster(self) -> bool:
        """True once a kind-450 roster event has been accepted."""
        return self.last_seq is not None

    def admin_set(self, global_admins: frozenset[str] = frozenset()) -> frozenset[str]:
        """Owner, group admins and the relay-wide ``admin_pubkeys``."""
        owner = {self.owner} if self.owner else set()
        return frozenset(self.admins | owner | global_admins)

    def member_set(
        self, *, include_invitees: bool = True, global_admins: frozenset[str] = frozenset()
    ) -> frozenset[str]:
        """R-M7: roster members ∪ welcome invitees − removed, plus owner and admins."""
        members = set(self.members)
        if include_invitees:
            members |= self.invitees - self.removed
        return frozenset(members | self.admin_set(global_admins))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (sets as sorted lists)."""
        return {
            "group_id": self.group_id,
            "owner": self.owner,
            "admins": sorted(self.admins),
            "members": sorted(self.members),
            "invitees": sorted(self.invitees),
            "removed": sorted(self.removed),
            "last_seq": self.last_seq,
            "last_epoch": self.last_epoch,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GroupState:
        """Inverse of :meth:`to_json`."""
        return cls(
            group_id=doc["group_id"],
            owner=doc.get("owner"),
            admins=frozenset(doc.get("admins", ())),
            members=frozenset(doc.get("members", ())),
            invitees=frozenset(doc.get("invitees", ())),
            removed=frozenset(doc.get("removed", ())),
            last_seq=doc.get("last_seq"),
            last_epoch=doc.get("last_epoch"),
        )


def open_to_named(state: GroupState | None, group_id: str) -> bool:
    """R-M11: True if naming ``group_id`` explicitly is enough to read and publish the
    group's 445s: the group has no roster (none seen yet, or created by a 445) and its
    id is a capability (:func:`is_capability_id`). A group with a
    roster keeps strict membership."""
    return (state is None or not state.has_roster) and is_capability_id(group_id)


@dataclass(frozen=True)
class Actor:
    """Who is writing: the connection's authenticated pubkeys and the gateway's settings."""

    pubkeys: frozenset[str]
    enforce: bool = True
    include_invitees: bool = True
    global_admins: frozenset[str] = frozenset()
    # R-M11: the id of a roster-less group is the capability to publish in it.
    id_capability: bool = True

    def primary(self) -> str | None:
        """The pubkey that owns what this connection creates (stable choice)."""
        return min(self.pubkeys) if self.pubkeys else None


def _epoch(event: Event) -> int | None | Rejection:
    value = event.first_tag_value("k")
    if value is None:
        return None
    epoch = parse_uint(value)
    if epoch is None:
        return invalid("k (epoch) must be a non-negative integer")
    return epoch


def on_group_message(
    state: GroupState | None, event: Event, actor: Actor
) -> GroupState | Rejection:
    """R-M3/R-A4: a 445 creates its group on first sight (owner = the authenticated
    pubkey, never the throw-away author), moves ``last_epoch`` forward only, and with
    delivery enforced is accepted only from a member's connection, or, for a group
    :func:`open_to_named` when the actor has ``id_capability``, from any authenticated
    connection (its ``h`` names the group, R-M11)."""
    group_id = event.first_tag_value("h") or ""
    if (problem := group_id_problem(group_id)) is not None:
        return problem
    epoch = _epoch(event)
    if isinstance(epoch, Rejection):
        return epoch
    if actor.enforce and not actor.pubkeys:
        return auth_required("group messages need an authenticated connection")
    if state is None:
        state = GroupState(group_id, owner=actor.primary())
    elif actor.enforce and not (actor.id_capability and open_to_named(state, group_id)):
        members = state.member_set(
            include_invitees=actor.include_invitees, global_admins=actor.global_admins
        )
        if not members & actor.pubkeys:
            return restricted("not a member of group")
    if epoch is not None and (state.last_epoch is None or epoch > state.last_epoch):
        state = replace(state, last_epoch=epoch)
    return state


def on_gift_wrap(state: GroupState | None, event: Event, actor: Actor) -> GroupState | None:
    """R-M5: a 1059 with ``h`` records its recipients as invited members of that group.

    Only a connection authenticated as a member can invite, and the roster's removals
    stand. A gift wrap never creates a group (only a 450 bootstrap or an authenticated
    445 does): otherwise anyone could claim a group id before its owner bootstraps it.
    Returns None when nothing changes; a gift wrap is stored and delivered either way.
    """
    group_id = event.first_tag_value("h")
    recipients = frozenset(event.tag_values("p"))
    if group_id_problem(group_id) is not None or not recipients or state is None:
        return None
    if actor.enforce:
        members = state.member_set(include_invitees=True, global_admins=actor.global_admins)
        if not members & actor.pubkeys:
            return None
    new_invitees = (recipients - state.removed) - state.invitees
    if not new_invitees:
        return None
    return replace(state, invitees=state.invitees | new_invitees)


def _targets(event: Event) -> frozenset[str]:
    return frozenset(event.tag_values("p"))


def check_roster_shape(event: Event) -> Rejection | None:
    """Stateless R-M6 checks: ``h``, ``op``, ``seq`` and the tags each op needs."""
    if (problem := group_id_problem(event.first_tag_value("h"))) is not None:
        return problem
    op = event.first_tag_value("op")
    if not op:
        return invalid("missing op")
    if op not in ROSTER_OPS:
        return invalid(f"unknown op {op[:32]!r}")
    if parse_uint(event.first_tag_value("seq")) is None:
        return invalid("bad seq")
    if op in ("add", "remove", "promote", "demote", "replace") and not _targets(event):
        return invalid(f"{op} needs p tags")
    if op in ("promote", "demote") and event.first_tag_value("role") != "admin":
        return invalid(f'{op} needs ["role","admin"]')
    return None


def on_roster(state: GroupState | None, event: Event, actor: Actor) -> GroupState | Rejection:
    """R-M6: apply a kind-450 roster/policy event to the group's stored state.

    A group with no stored state, or none with an owner, accepts only ``bootstrap``
    (the signer becomes owner and admin). A group that exists, with a roster or created
    by a 445, accepts any op from its owner or admins (and ``admin_pubkeys``). The first
    accepted 450 gives the group a roster: from then on it has strict membership (R-M11).
    """
    shape = check_roster_shape(event)
    if shape is not None:
        return shape
    group_id = event.first_tag_value("h") or ""
    op = event.first_tag_value("op") or ""
    seq = parse_uint(event.first_tag_value("seq")) or 0
    signer = event.pubkey
    if actor.enforce and signer not in actor.pubkeys:
        if not actor.pubkeys:
            return auth_required("roster events need their author's authenticated connection")
        return restricted("roster author must be authenticated on this connection")
    if state is None or (state.owner is None and not state.has_roster):
        if op != "bootstrap":
            return invalid("group does not exist")
        return _bootstrap(state or GroupState(group_id), signer, _targets(event), seq)
    if signer not in state.admin_set(actor.global_admins):
        return restricted("not a group admin")
    if not state.has_roster:  # created by a 445: its owner may bootstrap or edit at once
        if op == "bootstrap":
            return _bootstrap(state, signer, _targets(event), seq)
        return _apply_op(state, op, _targets(event), seq)
    if state.last_seq is not None and seq <= state.last_seq:
        return invalid("stale seq")
    return _apply_op(state, op, _targets(event), seq)


def _bootstrap(state: GroupState, signer: str, targets: frozenset[str], seq: int) -> GroupState:
    """The group's first roster: the signer is an admin (and the owner if it had none),
    the signer and ``targets`` are members."""
    return replace(
        state,
        owner=state.owner or signer,
        admins=state.admins | {signer},
        members=state.members | {signer} | targets,
        last_seq=seq,
    )


def _apply_op(
    state: GroupState, op: str, targets: frozenset[str], seq: int
) -> GroupState | Rejection:
    owner = frozenset({state.owner}) if state.owner else frozenset()
    if op == "bootstrap":
        return invalid("group already exists")
    if op == "add":
        return replace(
            state, members=state.members | targets, removed=state.removed - targets, last_seq=seq
        )
    if op == "remove":
        if targets & owner:
            return invalid("the owner cannot be removed")
        return replace(
            state,
            members=state.members - targets,
            invitees=state.invitees - targets,
            admins=state.admins - targets,
            removed=state.removed | targets,
            last_seq=seq,
        )
    if op == "replace":
        keep = targets | owner
        gone = (state.members | state.invitees) - keep
        return replace(
            state,
            members=keep,
            invitees=frozenset(),
            admins=state.admins & keep,
            removed=(state.removed | gone) - keep,
            last_seq=seq,
        )
    if op == "promote":
        return replace(
            state,
            admins=state.admins | targets,
            members=state.members | targets,
            removed=state.removed - targets,
            last_seq=seq,
        )
    if targets & owner:  # demote
        return invalid("the owner cannot be demoted")
    return replace(state, admins=state.admins - targets, last_seq=seq)


def merged(known: GroupState | None, incoming: GroupState) -> GroupState:
    """The later of two committed states of one group, whatever order they arrive in
    (R-S2: instances learn each other's changes over the bus and from the store).

    Roster events strictly raise ``last_seq``, so a lower one is older. Between roster
    events only invitations (``invitees`` grow) and group messages (``last_epoch`` grows)
    change a state, so two states with the same ``last_seq`` merge by union and maximum.
    """
    if known is None:
        return incoming
    known_seq = -1 if known.last_seq is None else known.last_seq
    incoming_seq = -1 if incoming.last_seq is None else incoming.last_seq
    if incoming_seq != known_seq:
        return incoming if incoming_seq > known_seq else known
    epochs = [e for e in (known.last_epoch, incoming.last_epoch) if e is not None]
    return replace(
        incoming,
        invitees=known.invitees | incoming.invitees,
        last_epoch=max(epochs) if epochs else None,
    )
