"""The runbook engine over any resource: an in-memory resource kind (a stand-in with etags,
not a mock) shows plan, dry run, confirmation, conflicts, partial failure and the ledger."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlsgw.errors import Conflict, OperationFailed, Refused
from mlsgw.gcp.clients import Cloud
from mlsgw.ledger import Ledger
from mlsgw.report import Change, Outcome, Status
from mlsgw.resources.base import Mutation
from mlsgw.runbook import Action, RunContext, execute
from mlsgw.runbook.engine import Trail
from mlsgw.target import Target


@dataclass(frozen=True)
class Box:
    """The state of a :class:`BoxResource`: a value and the etag it was read with."""

    value: str
    etag: int


@dataclass
class BoxResource:
    """A resource kind holding one string, written only with the etag last read."""

    key: str
    value: str = "old"
    etag: int = 1
    fail_with: Exception | None = None
    on_next_write: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    validations: int = 0
    kind: str = "box"

    @property
    def name(self) -> str:
        return f"boxes/{self.key}"

    def read(self) -> Box:
        return Box(self.value, self.etag)

    def summary(self, state: Box) -> object:
        return {"value": state.value, "etag": state.etag}

    def validate(self, state: Box, change: str) -> str:
        self.validations += 1
        return "checked locally"

    def apply(self, state: Box, change: str) -> Box:
        if self.on_next_write:  # another writer gets in first
            self.value, self.etag = self.on_next_write.pop(0), self.etag + 1
        if self.fail_with is not None:
            raise self.fail_with
        if state.etag != self.etag:
            raise Conflict(f"{self.name} changed")
        self.value, self.etag = change, self.etag + 1
        self.writes.append(change)
        return self.read()


def set_to(value: str, resource: BoxResource) -> Mutation[Box, str]:
    """Want ``value`` in ``resource``; nothing to do when it is there already."""
    return Mutation(
        f"set {resource.key}",
        resource,
        lambda state: None if state.value == value else value,
        lambda state, change: (Change(resource.name, "value", state.value, change),),
        lambda after: f"now {after.value}",
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


def context(ledger: Ledger, *, dry_run: bool = False, confirmed: bool = True) -> RunContext:
    counter = itertools.count(1)

    def confirm(question: str) -> None:
        if not confirmed:
            raise Refused("not confirmed: nothing was changed")

    class Quiet:
        def step(self, message: str) -> None:
            pass

    target = Target()
    return RunContext(
        command="boxes",
        target=target,
        cloud=Cloud(target),
        ledger=ledger,
        reporter=Quiet(),
        run_id=f"run-{next(counter)}",
        confirm=confirm,
        dry_run=dry_run,
    )


def action(*mutations: Mutation[Box, str]) -> Action:
    return Action(command="boxes", args={"why": "test"}, mutations=mutations, question="Go?")


def test_changes_apply_in_order_and_one_ledger_line_records_pre_and_post_state(
    ledger: Ledger,
) -> None:
    """Two resources of one action: both written, pre- and post-state keyed by resource."""
    a, b = BoxResource("a"), BoxResource("b")
    report = execute(context(ledger), action(set_to("new", a), set_to("new", b)))
    assert report.outcome is Outcome.DONE and (a.value, b.value) == ("new", "new")
    assert [(s.name, s.status) for s in report.steps] == [
        ("set a", Status.OK),
        ("set b", Status.OK),
    ]
    (entry,) = ledger.records()
    assert entry["pre_state"] == {
        "a": {"value": "old", "etag": 1},
        "b": {"value": "old", "etag": 1},
    }
    assert entry["result"]["post_state"]["a"] == {"value": "new", "etag": 2}
    assert entry["args"] == {"why": "test"}


def test_a_second_run_changes_nothing_and_says_so(ledger: Ledger) -> None:
    """Idempotent: the resource already looks as wanted, so nothing is written."""
    a = BoxResource("a", value="new")
    report = execute(context(ledger), action(set_to("new", a)))
    assert report.outcome is Outcome.DONE and "nothing to change" in report.summary
    assert a.writes == [] and report.steps[-1].name == "compare"


def test_dry_run_validates_and_writes_nothing_not_even_the_ledger(ledger: Ledger) -> None:
    """--dry-run: validated, planned, no write, no ledger line."""
    a = BoxResource("a")
    report = execute(context(ledger, dry_run=True), action(set_to("new", a)))
    assert report.outcome is Outcome.PLANNED and report.exit_code == 0
    assert a.validations == 1 and a.writes == [] and not ledger.exists()
    assert [vars(c) for c in report.plan] == [
        {"resource": "boxes/a", "field": "value", "before": "old", "after": "new"}
    ]


def test_dry_run_of_an_action_with_nothing_to_change_writes_no_ledger_line(
    ledger: Ledger,
) -> None:
    """A dry run records nothing, also when the resource already looks as wanted."""
    a = BoxResource("a", value="new")
    report = execute(context(ledger, dry_run=True), action(set_to("new", a)))
    assert report.outcome is Outcome.DONE and "nothing to change" in report.summary
    assert a.writes == [] and not ledger.exists()


def test_not_confirmed_is_refused_and_recorded(ledger: Ledger) -> None:
    """No confirmation: exit 3, nothing written, the refusal in the ledger."""
    a = BoxResource("a")
    report = execute(context(ledger, confirmed=False), action(set_to("new", a)))
    assert report.outcome is Outcome.REFUSED and report.exit_code == 3
    assert a.writes == [] and ledger.records()[0]["result"]["outcome"] == "refused"


def test_a_concurrent_change_is_re_read_and_recomputed(ledger: Ledger) -> None:
    """Another writer between read and write: conflict, read again, write on the new etag."""
    a = BoxResource("a", on_next_write=["theirs"])
    report = execute(context(ledger), action(set_to("new", a)))
    assert report.outcome is Outcome.DONE and a.value == "new"
    assert "1 concurrent change(s) re-read" in report.steps[-1].detail


def test_a_concurrent_writer_that_did_our_change_leaves_nothing_to_write(ledger: Ledger) -> None:
    """The recomputed change is None: the resource is left as the other writer made it."""
    a = BoxResource("a", on_next_write=["new"])
    report = execute(context(ledger), action(set_to("new", a)))
    assert report.outcome is Outcome.DONE and a.writes == []


def test_a_failed_change_stops_the_action_and_names_what_ran_and_what_did_not(
    ledger: Ledger,
) -> None:
    """The second of three fails: first applied, second failed, third not run; exit 1."""
    a, b, c = BoxResource("a"), BoxResource("b"), BoxResource("c")
    b.fail_with = OperationFailed("the box broke")
    report = execute(context(ledger), action(set_to("new", a), set_to("new", b), set_to("new", c)))
    assert report.outcome is Outcome.FAILED and report.exit_code == 1
    assert [(s.name, s.status, s.detail) for s in report.steps] == [
        ("set a", Status.OK, "now new"),
        ("set b", Status.CRITICAL, "the box broke"),
        ("set c", Status.SKIPPED, "not run"),
    ]
    assert "1 of 3 change(s) applied" in report.summary and c.writes == []
    assert json.loads(json.dumps(ledger.records()[0]))["result"]["outcome"] == "failed"


def test_an_unwritable_ledger_refuses_before_any_change(tmp_path: Path) -> None:
    """The ledger is checked first: exit 3 and the resource untouched."""
    (tmp_path / "file").write_text("")
    a = BoxResource("a")
    report = execute(context(Ledger(tmp_path / "file" / "l.jsonl")), action(set_to("new", a)))
    assert report.outcome is Outcome.REFUSED and "ledger cannot be written" in report.summary
    assert a.writes == []


def test_a_finish_that_raises_after_the_changes_fails_and_still_records_the_undo(
    ledger: Ledger,
) -> None:
    """Any exception from ``finish`` (not only ours): exit 1, the step and error named, and
    the ledger line keeps the pre-state, the post-state and the error."""
    a = BoxResource("a")

    def finish(ctx: RunContext, trail: Trail) -> str | None:
        raise OverflowError("Python int too large to convert to C int")

    report = execute(
        context(ledger),
        dataclasses.replace(action(set_to("new", a)), finish=finish, finish_label="collect"),
    )
    assert report.outcome is Outcome.FAILED and report.exit_code == 1
    assert report.summary == (
        "every change is applied, but collect failed: "
        "OverflowError: Python int too large to convert to C int"
    )
    assert report.steps[-1].name == "collect" and report.steps[-1].status is Status.CRITICAL
    (entry,) = ledger.records()
    assert entry["pre_state"] == {"a": {"value": "old", "etag": 1}}
    assert entry["result"]["post_state"] == {"a": {"value": "new", "etag": 2}}
    assert entry["result"]["outcome"] == "failed"
    assert entry["result"]["error"].startswith("OverflowError: ")


def test_a_verify_that_raises_after_the_changes_fails_and_still_records_the_undo(
    ledger: Ledger,
) -> None:
    """A read-back that raises (ours or not) is a failed run with its ledger line, not a
    refusal without a pre-state."""
    a = BoxResource("a")

    def verify(ctx: RunContext, trail: Trail) -> tuple[Outcome, str]:
        raise Refused("read back impossible")

    report = execute(context(ledger), dataclasses.replace(action(set_to("new", a)), verify=verify))
    assert report.outcome is Outcome.FAILED
    assert report.summary == "every change is applied, but verify failed: read back impossible"
    (entry,) = ledger.records()
    assert entry["pre_state"] == {"a": {"value": "old", "etag": 1}}
    assert entry["result"]["error"] == "read back impossible"


def test_a_write_that_raises_a_foreign_error_is_a_recorded_failure_with_what_ran(
    ledger: Ledger,
) -> None:
    """An untranslated exception from the second write: the first change stands, and the
    ledger line has its post-state so it can be undone."""
    a, b = BoxResource("a"), BoxResource("b")
    b.fail_with = KeyError("etag")
    report = execute(context(ledger), action(set_to("new", a), set_to("new", b)))
    assert report.outcome is Outcome.FAILED
    assert report.summary == "set b failed: KeyError: 'etag' (1 of 2 change(s) applied before it)"
    (entry,) = ledger.records()
    assert entry["result"]["post_state"] == {"a": {"value": "new", "etag": 2}}
