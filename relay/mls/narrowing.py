"""R-A3 in the query: rewrite a reader's filter so the store returns only what it may read.

Without this a ``limit`` is spent on events the read rules then drop: a recipient asking
``{"kinds":[1059],"limit":5}`` gets nothing when five newer gift wraps to others exist.
:func:`narrow_for_reader` splits a filter into sub-filters whose union matches exactly
the events of the original filter that the delivery rule of
:func:`relay.mls.rules.restricted_delivery` lets the reader see, wherever that can be
said as a filter. Where it cannot (a kind-less filter, a filter naming groups with
``#h``), the filter is kept as it is and the caller keeps reading past refused events.
:func:`count_scope` is the exact variant for COUNT: every rule that decides what a
connection may count (the delivery rule, R-M11's named groups, the passive key package
rule) said as filters, so a COUNT is counted in the store without loading events.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from relay.core.filters import Filter
from relay.core.policy import ScopeRule, Viewer
from relay.mls import kinds
from relay.mls.rules import GroupDirectory

# Beyond this many groups an #h list costs more than reading past refused events.
MAX_NARROWED_GROUPS = 1000


def _with_tag(f: Filter, name: str, values: frozenset[str]) -> Filter:
    """``f`` whose events must also carry a ``name`` tag with one of ``values``. A second
    condition on the same tag, not an intersection: an event tagged ``p`` = someone else
    *and* ``p`` = the reader matches ``#p: [someone else]`` and is the reader's to read."""
    asked = f.tag_values(name)
    if asked is not None and asked <= values:
        return f
    return replace(f, tags=(*f.tags, (name, values)))


def _addressed(f: Filter, viewer: Viewer) -> list[Filter]:
    """446/1059: to one of the reader's keys, by one of them, or published on this
    connection (the three ways :func:`relay.mls.rules._addressed` admits an event)."""
    parts: list[Filter] = []
    if viewer.pubkeys:
        parts.append(_with_tag(f, "p", viewer.pubkeys))
        authors = viewer.pubkeys if f.authors is None else f.authors & viewer.pubkeys
        if authors:
            parts.append(replace(f, authors=authors))
    own = frozenset(viewer.own_events)
    own = own if f.ids is None else f.ids & own
    if own:
        parts.append(replace(f, ids=own))
    return parts


def _grouped(f: Filter, viewer: Viewer, directory: GroupDirectory) -> list[Filter]:
    """445/450: only the groups the reader is a recorded member of. A filter that names
    its groups with ``#h`` is left to the read rule (naming a group may itself be what
    grants access), and so is a relay-wide admin, who reads every group."""
    if f.tag_values("h") is not None or viewer.pubkeys & directory.global_admins:
        return [f]
    groups = directory.groups_of(viewer.pubkeys)
    if len(groups) > MAX_NARROWED_GROUPS:
        return [f]
    return [_with_tag(f, "h", groups)] if groups else []


def narrow_for_reader(f: Filter, viewer: Viewer, directory: GroupDirectory) -> tuple[Filter, ...]:
    """Sub-filters, each with ``f``'s limit, whose union matches exactly the events of
    ``f`` that ``viewer`` may read under enforced delivery — or, where that cannot be
    expressed, a superset (``f`` itself) for the caller to pass through the read rules.
    Never drops an event the reader may read. An empty result means nothing readable."""
    if f.kinds is None:
        return (f,)
    addressed = f.kinds & kinds.ADDRESSED
    grouped = f.kinds & kinds.GROUP_KINDS
    if not addressed and not grouped:
        return (f,)
    rest = f.kinds - addressed - grouped
    parts = [replace(f, kinds=rest)] if rest else []
    if addressed:
        parts += _addressed(replace(f, kinds=addressed), viewer)
    if grouped:
        parts += _grouped(replace(f, kinds=grouped), viewer, directory)
    return tuple(parts)


def _named_groups(viewer: Viewer) -> frozenset[str]:
    """Every group id the request being answered names with ``#h``."""
    named: set[str] = set()
    for f in viewer.asked:
        values = f.tag_values("h")
        if values is not None:
            named |= values
    return frozenset(named)


def _countable_groups(f: Filter, viewer: Viewer, directory: GroupDirectory) -> list[Filter] | None:
    """445/450 (stored only with their one ``h`` tag, which the write rules ensure): the
    reader's member groups, plus for 445 the named groups open to those who name them
    (R-M11); None when the group list would be too long to send to the store."""
    keys = viewer.pubkeys
    if not keys:
        return []
    if keys & directory.global_admins:
        return [f]  # relay-wide admins read every group, known or not
    members = directory.groups_of(keys)
    parts: list[Filter] = []
    if f.kinds is not None and kinds.ROSTER in f.kinds and members:
        parts.append(_with_tag(replace(f, kinds=frozenset({kinds.ROSTER})), "h", members))
    if f.kinds is not None and kinds.GROUP_MESSAGE in f.kinds:
        named = frozenset(g for g in _named_groups(viewer) if directory.open_to_named(g))
        groups = members | named
        if groups:
            message = replace(f, kinds=frozenset({kinds.GROUP_MESSAGE}))
            parts.append(_with_tag(message, "h", groups))
    if any(len(p.tag_values("h") or ()) > MAX_NARROWED_GROUPS for p in parts):
        return None
    return parts


def count_scope(directory: GroupDirectory, *, enforce: bool) -> ScopeRule:
    """For a filter over restricted kinds, filters matching exactly the events its
    reader may count: :func:`relay.mls.rules.restricted_delivery` (when ``enforce``),
    R-M11's named groups and :func:`relay.mls.rules.own_keypackages_only`, as filters.
    None when that cannot be said within bounds (the caller then counts event by event)."""

    def scope(f: Filter, viewer: Viewer) -> tuple[Filter, ...] | None:
        asked = f.kinds if f.kinds is not None else kinds.RESTRICTED
        keys = viewer.pubkeys
        parts: list[Filter] = []
        if kinds.KEYPACKAGE in asked and keys:  # passive: a key package counts for its owner
            own = keys if f.authors is None else f.authors & keys
            if own:
                parts.append(replace(f, kinds=frozenset({kinds.KEYPACKAGE}), authors=own))
        rest = asked - {kinds.KEYPACKAGE}
        if not enforce:
            if rest:
                parts.append(replace(f, kinds=rest))
            return tuple(parts)
        if kinds.KEYPACKAGE_RELAYS in rest and keys:
            parts.append(replace(f, kinds=frozenset({kinds.KEYPACKAGE_RELAYS})))
        grouped = rest & kinds.GROUP_KINDS
        if grouped:
            group_parts = _countable_groups(replace(f, kinds=grouped), viewer, directory)
            if group_parts is None:
                return None
            parts += group_parts
        addressed = rest & kinds.ADDRESSED
        if addressed:
            parts += _addressed(replace(f, kinds=addressed), viewer)
        return tuple(p for p in parts if not p.is_empty_by_construction)

    return scope
