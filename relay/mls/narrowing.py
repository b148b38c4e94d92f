"""R-A3 in the query: rewrite a reader's filter so the store returns only what it may read.

Without this a ``limit`` is spent on events the read rules then drop: a recipient asking
``{"kinds":[1059],"limit":5}`` gets nothing when five newer gift wraps to others exist.
:func:`narrow_for_reader` splits a filter into sub-filters whose union matches exactly
the events of the original filter that the delivery rule of
:func:`relay.mls.rules.restricted_delivery` lets the reader see, wherever that can be
said as a filter. Where it cannot (a kind-less filter, a filter naming groups with
``#h``), the filter is kept as it is and the caller keeps reading past refused events.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from relay.core.filters import Filter
from relay.core.policy import Viewer
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
