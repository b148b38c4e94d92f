"""relay.mls.groups: group registry, rosters and membership (R-M3, R-M5…R-M7, R-M11), pure."""

from __future__ import annotations

import orjson
import pytest

from relay.core.event import Event
from relay.core.reasons import Rejection
from relay.mls.groups import (
    Actor,
    GroupState,
    check_roster_shape,
    is_capability_id,
    on_gift_wrap,
    on_group_message,
    on_roster,
    open_to_named,
)
from tests.support.nostr import Keys

OWNER, ADMIN, MEMBER, OUTSIDER, ROOT, THROWAWAY = (
    Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33", "44", "55", "66")
)
NOW = 1_700_000_000
G = "group-1"
MARMOT = "a1" * 32  # a Marmot nostr_group_id: 32 bytes in hex


def as_(*keys: Keys, **options: object) -> Actor:
    return Actor(frozenset(k.pubkey for k in keys), **options)  # type: ignore[arg-type]


def roster(
    signer: Keys, op: str, seq: int | str, *targets: Keys, group: str = G, **extra: str
) -> Event:
    tags = [["h", group], ["op", op], ["seq", str(seq)], *(["p", t.pubkey] for t in targets)]
    tags += [[k, v] for k, v in extra.items()]
    return signer.sign(450, "", tags, created_at=NOW)


def group_msg(epoch: str | None = None, group: str = G) -> Event:
    tags = [["h", group]] + ([["k", epoch]] if epoch is not None else [])
    return THROWAWAY.sign(445, "ciphertext", tags, created_at=NOW)


def wrap(*recipients: Keys, group: str | None = G) -> Event:
    tags = [["p", r.pubkey] for r in recipients] + ([["h", group]] if group else [])
    return THROWAWAY.sign(1059, "sealed", tags, created_at=NOW)


def ok(result: GroupState | Rejection | None) -> GroupState:
    assert isinstance(result, GroupState), result
    return result


def refused(result: GroupState | Rejection | None) -> str:
    assert isinstance(result, Rejection), result
    return result.message()


def pubkeys(*keys: Keys) -> frozenset[str]:
    return frozenset(k.pubkey for k in keys)


def bootstrapped(*members: Keys) -> GroupState:
    """A group OWNER bootstrapped at seq 1 with ``members``."""
    return ok(on_roster(None, roster(OWNER, "bootstrap", 1, *members), as_(OWNER)))


# --- GroupState ----------------------------------------------------------------------------


def test_member_set_is_roster_plus_invitees_minus_removed_plus_owner_and_admins() -> None:
    """R-M7 membership formula."""
    state = GroupState(
        G,
        owner=OWNER.pubkey,
        admins=pubkeys(ADMIN),
        members=pubkeys(MEMBER),
        invitees=pubkeys(OUTSIDER, ROOT),
        removed=pubkeys(ROOT),
    )
    assert state.member_set() == pubkeys(OWNER, ADMIN, MEMBER, OUTSIDER)


def test_member_set_without_invitees_ignores_welcomes() -> None:
    """membership = "roster": gift-wrap invitees are not members."""
    state = GroupState(G, owner=OWNER.pubkey, invitees=pubkeys(OUTSIDER))
    assert state.member_set(include_invitees=False) == pubkeys(OWNER)


def test_global_admins_are_members_and_admins_of_every_group() -> None:
    """``admin_pubkeys`` join the admin and member sets."""
    state = GroupState(G, owner=OWNER.pubkey)
    assert ROOT.pubkey in state.admin_set(pubkeys(ROOT))
    assert ROOT.pubkey in state.member_set(global_admins=pubkeys(ROOT))


def test_group_state_json_round_trips() -> None:
    """to_json/from_json is lossless (stores keep it as JSON)."""
    state = GroupState(
        G,
        owner=OWNER.pubkey,
        admins=pubkeys(ADMIN),
        members=pubkeys(MEMBER),
        invitees=pubkeys(OUTSIDER),
        removed=pubkeys(ROOT),
        last_seq=4,
        last_epoch=9,
    )
    assert GroupState.from_json(orjson.loads(orjson.dumps(state.to_json()))) == state


# --- 445 group registry --------------------------------------------------------------------


def test_first_group_message_creates_the_group_owned_by_the_authenticated_pubkey() -> None:
    """The owner is the connection's pubkey, never the throw-away author."""
    state = ok(on_group_message(None, group_msg("0"), as_(MEMBER)))
    assert state.owner == MEMBER.pubkey and state.owner != THROWAWAY.pubkey
    assert state.group_id == G and state.last_epoch == 0


def test_group_message_epoch_only_moves_forward() -> None:
    """A higher ``k`` raises last_epoch; a lower or absent one leaves it."""
    state = ok(on_group_message(None, group_msg("5"), as_(OWNER)))
    assert ok(on_group_message(state, group_msg("7"), as_(OWNER))).last_epoch == 7
    assert ok(on_group_message(state, group_msg("3"), as_(OWNER))).last_epoch == 5
    assert ok(on_group_message(state, group_msg(None), as_(OWNER))).last_epoch == 5


def test_group_message_from_a_non_member_is_restricted() -> None:
    """R-A4: with delivery enforced, only a member's connection may write."""
    state = bootstrapped(MEMBER)
    assert refused(on_group_message(state, group_msg(), as_(OUTSIDER))) == (
        "restricted: not a member of group"
    )
    assert ok(on_group_message(state, group_msg(), as_(MEMBER)))


def test_group_message_from_an_invitee_is_accepted_unless_membership_is_roster() -> None:
    """A welcome invitee may write, except with membership = "roster"."""
    state = GroupState(G, owner=OWNER.pubkey, invitees=pubkeys(MEMBER), last_seq=1)
    assert ok(on_group_message(state, group_msg(), as_(MEMBER)))
    roster_only = as_(MEMBER, include_invitees=False)
    assert refused(on_group_message(state, group_msg(), roster_only)).startswith("restricted:")


def test_group_message_from_a_removed_member_is_restricted() -> None:
    """Removal takes away write access."""
    state = bootstrapped(MEMBER)
    state = ok(on_roster(state, roster(OWNER, "remove", 2, MEMBER), as_(OWNER)))
    assert refused(on_group_message(state, group_msg(), as_(MEMBER))).startswith("restricted:")


def test_group_message_from_a_global_admin_is_accepted() -> None:
    """``admin_pubkeys`` may write to any group."""
    state = bootstrapped()
    assert ok(on_group_message(state, group_msg(), as_(ROOT, global_admins=pubkeys(ROOT))))


def test_group_message_needs_an_authenticated_connection() -> None:
    """No pubkey on the connection: auth-required, even for a new group."""
    assert refused(on_group_message(None, group_msg(), as_())).startswith("auth-required:")


def test_group_message_with_open_delivery_accepts_anyone() -> None:
    """delivery = "open": no membership or authentication check."""
    state = bootstrapped(MEMBER)
    assert ok(on_group_message(state, group_msg(), as_(OUTSIDER, enforce=False)))
    assert ok(on_group_message(None, group_msg(), as_(enforce=False))).owner is None


@pytest.mark.parametrize("tags", [[], [["h", ""]]])
def test_group_message_without_h_is_invalid(tags: list[list[str]]) -> None:
    """R-M3: ``h`` is required."""
    event = THROWAWAY.sign(445, "x", tags, created_at=NOW)
    assert refused(on_group_message(None, event, as_(OWNER))) == "invalid: missing h"


@pytest.mark.parametrize("epoch", ["-1", "one", "1.0", "", "³", "9" * 19])
def test_group_message_with_a_bad_epoch_is_invalid(epoch: str) -> None:
    """``k`` must be a plain non-negative integer (never an exception)."""
    assert refused(on_group_message(None, group_msg(epoch), as_(OWNER))).startswith(
        "invalid: k (epoch)"
    )


# --- 1059 invitees -------------------------------------------------------------------------


def test_gift_wrap_from_a_member_records_its_recipients_as_invitees() -> None:
    """R-M5: a member's gift wrap with ``h`` invites its ``p`` recipients."""
    state = bootstrapped(MEMBER)
    after = on_gift_wrap(state, wrap(OUTSIDER, ADMIN), as_(MEMBER))
    assert after is not None and after.invitees == pubkeys(OUTSIDER, ADMIN)
    assert OUTSIDER.pubkey in after.member_set()


def test_gift_wrap_from_a_non_member_invites_nobody() -> None:
    """A non-member cannot invite (itself or anyone) into an existing group."""
    state = bootstrapped(MEMBER)
    assert on_gift_wrap(state, wrap(OUTSIDER), as_(OUTSIDER)) is None


def test_gift_wrap_cannot_reinvite_a_removed_member() -> None:
    """The roster's removals stand against later welcomes."""
    state = ok(on_roster(bootstrapped(MEMBER), roster(OWNER, "remove", 2, MEMBER), as_(OWNER)))
    assert on_gift_wrap(state, wrap(MEMBER), as_(OWNER)) is None


def test_gift_wrap_without_h_or_p_changes_nothing() -> None:
    """No group or no recipient: no membership change."""
    state = bootstrapped()
    assert on_gift_wrap(state, wrap(OUTSIDER, group=None), as_(OWNER)) is None
    assert on_gift_wrap(state, wrap(group=G), as_(OWNER)) is None


def test_gift_wrap_with_a_malformed_group_id_invites_nobody() -> None:
    """An ``h`` that is not a group id (control characters, 257 characters) invites no one,
    even when it names the group with something appended."""
    state = bootstrapped()
    for bad in (G + "\u0000", G + "x" * (257 - len(G))):
        assert on_gift_wrap(state, wrap(OUTSIDER, group=bad), as_(OWNER)) is None


def test_gift_wrap_to_an_existing_invitee_changes_nothing() -> None:
    """Re-inviting the same pubkey is no state change."""
    state = ok(on_gift_wrap(bootstrapped(), wrap(OUTSIDER), as_(OWNER)))
    assert on_gift_wrap(state, wrap(OUTSIDER), as_(OWNER)) is None


def test_gift_wrap_for_an_unknown_group_creates_nothing() -> None:
    """A gift wrap never claims a group id: an unknown group stays unknown."""
    assert on_gift_wrap(None, wrap(MEMBER), as_(OWNER)) is None
    assert on_gift_wrap(None, wrap(OUTSIDER), as_(OUTSIDER)) is None


# --- 450 shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([["op", "add"], ["seq", "1"]], "invalid: missing h"),
        ([["h", G], ["seq", "1"]], "invalid: missing op"),
        ([["h", G], ["op", "nuke"], ["seq", "1"]], "invalid: unknown op 'nuke'"),
        ([["h", G], ["op", "bootstrap"]], "invalid: bad seq"),
        ([["h", G], ["op", "bootstrap"], ["seq", "x"]], "invalid: bad seq"),
        ([["h", G], ["op", "bootstrap"], ["seq", "-1"]], "invalid: bad seq"),
        ([["h", G], ["op", "bootstrap"], ["seq", "²"]], "invalid: bad seq"),
        ([["h", G], ["op", "bootstrap"], ["seq", "9" * 30]], "invalid: bad seq"),
        ([["h", G], ["op", "add"], ["seq", "2"]], "invalid: add needs p tags"),
        (
            [["h", G], ["op", "promote"], ["seq", "2"], ["p", "ab" * 32]],
            'invalid: promote needs ["role","admin"]',
        ),
        (
            [["h", G], ["op", "demote"], ["seq", "2"], ["p", "ab" * 32], ["role", "member"]],
            'invalid: demote needs ["role","admin"]',
        ),
    ],
)
def test_roster_shape_rejections(tags: list[list[str]], message: str) -> None:
    """Every stateless R-M6 rejection, by reason."""
    event = OWNER.sign(450, "", tags, created_at=NOW)
    shape = check_roster_shape(event)
    assert shape is not None and shape.message() == message
    assert refused(on_roster(None, event, as_(OWNER))) == message


def test_roster_shape_accepts_a_complete_event() -> None:
    """A well-formed roster event passes the shape checks."""
    assert check_roster_shape(roster(OWNER, "promote", 2, ADMIN, role="admin")) is None


# --- 450 state transitions -----------------------------------------------------------------


def test_bootstrap_of_an_unknown_group_makes_the_signer_owner_and_admin() -> None:
    """Bootstrap creates the group: signer is owner and admin, ``p`` are members."""
    state = bootstrapped(MEMBER)
    assert state.owner == OWNER.pubkey and state.admins == pubkeys(OWNER)
    assert state.members == pubkeys(OWNER, MEMBER) and state.last_seq == 1


@pytest.mark.parametrize("op", ["add", "remove", "replace"])
def test_ops_other_than_bootstrap_on_an_unknown_group_are_refused(op: str) -> None:
    """Unknown group: only bootstrap is accepted."""
    event = roster(OWNER, op, 1, MEMBER)
    assert refused(on_roster(None, event, as_(OWNER))) == "invalid: group does not exist"


def test_bootstrap_of_a_group_seen_through_445_keeps_its_owner() -> None:
    """The first 445's connection owns the group; another pubkey may not bootstrap it."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    event = roster(OUTSIDER, "bootstrap", 1)
    assert refused(on_roster(state, event, as_(OUTSIDER))) == "restricted: not a group admin"
    after = ok(on_roster(state, roster(OWNER, "bootstrap", 1, MEMBER), as_(OWNER)))
    assert after.owner == OWNER.pubkey and after.has_roster


def test_bootstrap_by_a_global_admin_of_a_group_seen_through_445_is_accepted() -> None:
    """``admin_pubkeys`` may bootstrap any group; the owner stays."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    actor = as_(ROOT, global_admins=pubkeys(ROOT))
    after = ok(on_roster(state, roster(ROOT, "bootstrap", 1), actor))
    assert after.owner == OWNER.pubkey and ROOT.pubkey in after.admins


@pytest.mark.parametrize("op", ["add", "replace"])
def test_the_owner_of_a_group_created_by_a_445_may_add_members_without_a_bootstrap(
    op: str,
) -> None:
    """A 445 made the group and its owner: the owner's first 450 is applied, gives the
    group a roster and makes its targets members who may publish."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    after = ok(on_roster(state, roster(OWNER, op, 1, MEMBER), as_(OWNER)))
    assert after.owner == OWNER.pubkey and after.has_roster and after.last_seq == 1
    assert after.member_set() == pubkeys(OWNER, MEMBER)
    ok(on_group_message(after, group_msg(), as_(MEMBER)))
    assert refused(on_roster(after, roster(OWNER, op, 1, ADMIN), as_(OWNER))) == (
        "invalid: stale seq"
    )


def test_a_global_admin_may_add_to_a_group_created_by_a_445() -> None:
    """``admin_pubkeys`` administer a group a 445 created, as any other."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    actor = as_(ROOT, global_admins=pubkeys(ROOT))
    after = ok(on_roster(state, roster(ROOT, "add", 1, MEMBER), actor))
    assert after.owner == OWNER.pubkey and MEMBER.pubkey in after.members


@pytest.mark.parametrize("op", ["add", "remove", "replace", "bootstrap"])
def test_a_non_owner_may_not_publish_rosters_for_a_group_created_by_a_445(op: str) -> None:
    """Only the 445's owner (or an admin) may publish the first 450 of its group."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    event = roster(OUTSIDER, op, 1, OUTSIDER)
    assert refused(on_roster(state, event, as_(OUTSIDER))) == "restricted: not a group admin"


def test_a_group_created_by_a_445_without_an_owner_accepts_only_bootstrap() -> None:
    """Open delivery and no AUTH: the 445's group has no owner, so it is still unknown
    to roster events other than bootstrap."""
    state = ok(on_group_message(None, group_msg(), as_(enforce=False)))
    assert state.owner is None
    event = roster(OWNER, "add", 1, MEMBER)
    assert refused(on_roster(state, event, as_(OWNER))) == "invalid: group does not exist"
    assert ok(on_roster(state, roster(OWNER, "bootstrap", 1), as_(OWNER))).owner == OWNER.pubkey


def test_roster_from_a_non_admin_is_restricted() -> None:
    """An existing group: only owner or admins may publish rosters."""
    state = bootstrapped(MEMBER)
    for signer in (MEMBER, OUTSIDER):
        event = roster(signer, "add", 2, signer)
        assert refused(on_roster(state, event, as_(signer))) == "restricted: not a group admin"


def test_roster_signer_must_be_authenticated_on_the_connection() -> None:
    """The signer is the authenticated author: unauthenticated → auth-required, another
    pubkey → restricted."""
    event = roster(OWNER, "bootstrap", 1)
    assert refused(on_roster(None, event, as_())).startswith("auth-required:")
    assert refused(on_roster(None, event, as_(OUTSIDER))).startswith("restricted:")


def test_roster_with_open_delivery_does_not_need_the_signer_authenticated() -> None:
    """delivery = "open": the signature is enough, admin checks still apply."""
    state = ok(on_roster(None, roster(OWNER, "bootstrap", 1), as_(enforce=False)))
    event = roster(OUTSIDER, "add", 2, OUTSIDER)
    assert refused(on_roster(state, event, as_(enforce=False))) == "restricted: not a group admin"


@pytest.mark.parametrize("seq", [1, 0])
def test_roster_with_a_stale_or_duplicate_seq_is_refused(seq: int) -> None:
    """``seq`` must be strictly greater than the group's last."""
    state = bootstrapped()
    event = roster(OWNER, "add", seq, MEMBER)
    assert refused(on_roster(state, event, as_(OWNER))) == "invalid: stale seq"


def test_roster_seq_may_jump_forward() -> None:
    """Any greater ``seq`` is accepted and becomes the last."""
    state = ok(on_roster(bootstrapped(), roster(OWNER, "add", 10, MEMBER), as_(OWNER)))
    assert state.last_seq == 10


def test_second_bootstrap_is_refused() -> None:
    """A group exists once; bootstrap again is invalid."""
    event = roster(OWNER, "bootstrap", 2)
    assert refused(on_roster(bootstrapped(), event, as_(OWNER))).startswith("invalid:")


def test_add_makes_members_and_lifts_a_removal() -> None:
    """``add`` extends the member set and undoes an earlier removal."""
    state = ok(on_roster(bootstrapped(MEMBER), roster(OWNER, "remove", 2, MEMBER), as_(OWNER)))
    state = ok(on_roster(state, roster(OWNER, "add", 3, MEMBER, OUTSIDER), as_(OWNER)))
    assert pubkeys(MEMBER, OUTSIDER) <= state.member_set()
    assert MEMBER.pubkey not in state.removed


def test_remove_takes_members_invitees_and_admins_out() -> None:
    """``remove`` drops the targets from every set and records them as removed."""
    state = bootstrapped(MEMBER)
    state = ok(on_roster(state, roster(OWNER, "promote", 2, ADMIN, role="admin"), as_(OWNER)))
    state = ok(on_gift_wrap(state, wrap(OUTSIDER), as_(OWNER)))
    state = ok(on_roster(state, roster(OWNER, "remove", 3, MEMBER, ADMIN, OUTSIDER), as_(OWNER)))
    assert state.member_set() == pubkeys(OWNER)
    assert state.removed == pubkeys(MEMBER, ADMIN, OUTSIDER)


def test_the_owner_cannot_be_removed_or_demoted() -> None:
    """Owner protections: remove and demote of the owner are invalid."""
    state = bootstrapped()
    remove = roster(ADMIN, "remove", 3, OWNER)
    demote = roster(ADMIN, "demote", 3, OWNER, role="admin")
    state = ok(on_roster(state, roster(OWNER, "promote", 2, ADMIN, role="admin"), as_(OWNER)))
    assert refused(on_roster(state, remove, as_(ADMIN))) == "invalid: the owner cannot be removed"
    assert refused(on_roster(state, demote, as_(ADMIN))) == "invalid: the owner cannot be demoted"


def test_replace_sets_the_member_list_keeping_the_owner() -> None:
    """``replace``: members = targets + owner; invitees cleared; others removed."""
    state = bootstrapped(MEMBER)
    state = ok(on_gift_wrap(state, wrap(OUTSIDER), as_(OWNER)))
    state = ok(on_roster(state, roster(OWNER, "promote", 2, ADMIN, role="admin"), as_(OWNER)))
    state = ok(on_roster(state, roster(OWNER, "replace", 3, ROOT), as_(OWNER)))
    assert state.member_set() == pubkeys(OWNER, ROOT)
    assert pubkeys(MEMBER, OUTSIDER, ADMIN) <= state.removed and not state.invitees


def test_promote_and_demote_change_admins() -> None:
    """``promote`` makes an admin (and member) who may then publish; ``demote`` undoes it."""
    promote = roster(OWNER, "promote", 2, ADMIN, role="admin")
    state = ok(on_roster(bootstrapped(), promote, as_(OWNER)))
    assert ADMIN.pubkey in state.admins and ADMIN.pubkey in state.member_set()
    state = ok(on_roster(state, roster(ADMIN, "add", 3, MEMBER), as_(ADMIN)))
    assert MEMBER.pubkey in state.members
    state = ok(on_roster(state, roster(OWNER, "demote", 4, ADMIN, role="admin"), as_(OWNER)))
    assert ADMIN.pubkey not in state.admins
    event = roster(ADMIN, "add", 5, OUTSIDER)
    assert refused(on_roster(state, event, as_(ADMIN))) == "restricted: not a group admin"


def test_global_admin_may_publish_rosters_for_any_group() -> None:
    """``admin_pubkeys`` act as admins of every group."""
    actor = as_(ROOT, global_admins=pubkeys(ROOT))
    state = ok(on_roster(bootstrapped(), roster(ROOT, "add", 2, MEMBER), actor))
    assert MEMBER.pubkey in state.members


# --- R-M11: a roster-less group's id is the capability ---------------------------------------


@pytest.mark.parametrize(
    ("group_id", "expected"),
    [
        ("a1" * 32, True),
        ("A1" * 32, True),
        ("ab" * 48, True),
        ("a1" * 31, False),
        ("a1" * 32 + "f", False),
        ("g1" * 32, False),
        ("group-1", False),
        ("", False),
    ],
)
def test_only_ids_of_at_least_32_hex_bytes_are_capabilities(group_id: str, expected: bool) -> None:
    """Short or non-hex ids can be guessed: they never serve as a capability."""
    assert is_capability_id(group_id) is expected


def test_a_group_is_open_to_whoever_names_it_only_without_a_roster() -> None:
    """Unknown, 445-created and invitation-only groups are open to those who name them;
    a 450 bootstrap closes the group to its recorded members."""
    created = ok(on_group_message(None, group_msg(group=MARMOT), as_(OWNER)))
    invited = GroupState(MARMOT, owner=OWNER.pubkey, invitees=pubkeys(MEMBER))
    assert open_to_named(None, MARMOT)
    assert open_to_named(created, MARMOT) and open_to_named(invited, MARMOT)
    assert not open_to_named(GroupState(MARMOT, owner=OWNER.pubkey, last_seq=1), MARMOT)
    assert not open_to_named(None, G)


def test_group_message_naming_a_roster_less_marmot_group_is_accepted_from_a_non_member() -> None:
    """Bob, who learnt the id from his welcome, may publish his self-update commit; the
    group's recorded owner and membership do not change."""
    state = ok(on_group_message(None, group_msg("0", group=MARMOT), as_(OWNER)))
    after = ok(on_group_message(state, group_msg("1", group=MARMOT), as_(MEMBER)))
    assert after.owner == OWNER.pubkey and after.member_set() == {OWNER.pubkey}
    assert after.last_epoch == 1


def test_group_message_naming_a_marmot_group_still_needs_an_authenticated_connection() -> None:
    """The capability is for authenticated connections only."""
    state = ok(on_group_message(None, group_msg(group=MARMOT), as_(OWNER)))
    assert refused(on_group_message(state, group_msg(group=MARMOT), as_())).startswith(
        "auth-required:"
    )


def test_group_message_to_a_marmot_group_with_a_roster_keeps_strict_membership() -> None:
    """Once bootstrapped by a 450, the id alone no longer lets an outsider write."""
    bootstrap = OWNER.sign(450, "", [["h", MARMOT], ["op", "bootstrap"], ["seq", "1"]])
    state = ok(on_roster(None, bootstrap, as_(OWNER)))
    assert refused(on_group_message(state, group_msg(group=MARMOT), as_(OUTSIDER))) == (
        "restricted: not a member of group"
    )


def test_a_marmot_group_whose_owner_adds_a_member_keeps_strict_membership() -> None:
    """A roster-less Marmot group is open to whoever names it until its owner publishes
    a roster event; from then on only recorded members may publish."""
    state = ok(on_group_message(None, group_msg(group=MARMOT), as_(OWNER)))
    ok(on_group_message(state, group_msg(group=MARMOT), as_(OUTSIDER)))
    after = ok(on_roster(state, roster(OWNER, "add", 1, MEMBER, group=MARMOT), as_(OWNER)))
    assert not open_to_named(after, MARMOT)
    ok(on_group_message(after, group_msg(group=MARMOT), as_(MEMBER)))
    message = group_msg(group=MARMOT)
    assert refused(on_group_message(after, message, as_(OUTSIDER))) == (
        "restricted: not a member of group"
    )


def test_group_message_with_the_capability_turned_off_needs_a_recorded_member() -> None:
    """membership = "roster" (id_capability False): strict membership for every group."""
    state = ok(on_group_message(None, group_msg(group=MARMOT), as_(OWNER)))
    strict = as_(MEMBER, include_invitees=False, id_capability=False)
    assert refused(on_group_message(state, group_msg(group=MARMOT), strict)).startswith(
        "restricted:"
    )


def test_group_message_to_a_short_id_group_needs_a_recorded_member() -> None:
    """A guessable id is no capability, even without a roster."""
    state = ok(on_group_message(None, group_msg(), as_(OWNER)))
    assert refused(on_group_message(state, group_msg(), as_(MEMBER))).startswith("restricted:")
