"""Lockdown's policy logic, pure: which members go, what the plan says, what counts as same."""

from __future__ import annotations

from mlsgw.gcp.base import Binding, IamPolicy
from mlsgw.lockdown import locked_policy, policy_changes, public_invokers, same_bindings

INVOKER = "roles/run.invoker"


def policy(*bindings: tuple[str, tuple[str, ...]], etag: bytes = b"e1") -> IamPolicy:
    return IamPolicy(tuple(Binding(role, members) for role, members in bindings), etag)


def test_only_public_members_of_the_invoker_role_are_removed() -> None:
    """allUsers and allAuthenticatedUsers go from run.invoker; other roles keep theirs."""
    before = policy(
        (INVOKER, ("allUsers", "allAuthenticatedUsers", "user:a@x.org")),
        ("roles/run.viewer", ("allUsers",)),
    )
    after = locked_policy(before)
    assert after is not None and after.etag == before.etag
    assert after.members_of(INVOKER) == ("user:a@x.org",)
    assert after.members_of("roles/run.viewer") == ("allUsers",)


def test_a_binding_left_empty_is_dropped_and_a_private_policy_needs_nothing() -> None:
    """An invoker binding of only allUsers disappears; a private policy is left alone."""
    after = locked_policy(policy((INVOKER, ("allUsers",))))
    assert after is not None and after.bindings == ()
    assert locked_policy(policy((INVOKER, ("user:a@x.org",)))) is None
    assert public_invokers(policy()) == ()


def test_plan_lines_name_each_changed_role() -> None:
    """One line per role whose members change, before and after."""
    before = policy((INVOKER, ("allUsers", "user:a@x.org")), ("roles/run.admin", ("user:b@x",)))
    after = policy((INVOKER, ("user:a@x.org",)), ("roles/run.admin", ("user:b@x",)))
    (line,) = policy_changes("svc", before, after)
    assert (line.field, line.before, line.after) == (
        INVOKER,
        "allUsers, user:a@x.org",
        "user:a@x.org",
    )


def test_same_bindings_ignores_order_duplicates_and_etag() -> None:
    """Restoring is judged on who holds which role, not on how the policy is written."""
    left = policy((INVOKER, ("b", "a")), ("r", ("c",)), etag=b"1")
    right = policy(("r", ("c",)), (INVOKER, ("a",)), (INVOKER, ("b",)), etag=b"2")
    assert same_bindings(left, right)
    assert not same_bindings(left, policy((INVOKER, ("a",))))


def test_a_policy_survives_the_ledger_round_trip() -> None:
    """describe() -> JSON -> from_description() keeps bindings, version and etag bytes."""
    original = IamPolicy((Binding(INVOKER, ("allUsers",)),), b"\x00\xffetag", version=3)
    assert IamPolicy.from_description(original.describe()) == original
