"""The restore plan as data: count validation and the commands named after a failure."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from mlsgw.backups.plan import (
    IMPORT,
    REOPEN,
    VALIDATE,
    RestorePlan,
    RestoreSource,
    count_step,
    next_commands,
)
from mlsgw.report import Status
from mlsgw.target import Target

TARGET = Target(project="p", region="europe-west1", service="mlsgw", ledger="gs://a/l.jsonl")
PLAN = RestorePlan(
    RestoreSource("gs://b/x", datetime(2026, 12, 1, tzinfo=UTC), 42, "manifest"),
    "projects/p/databases/(default)",
    "projects/p/locations/europe-west1/services/mlsgw",
    "internal-and-cloud-load-balancing",
    None,
)


def test_counts_must_match_and_unknown_is_a_warning_not_a_pass() -> None:
    """Equal: OK; different: CRITICAL naming both; no recorded count: WARNING."""
    assert count_step(42, 42, "manifest").status is Status.OK
    bad = count_step(42, 40, "manifest")
    assert (
        bad.status is Status.CRITICAL and "40 documents imported, the export holds 42" in bad.detail
    )
    assert count_step(None, 40, "unknown").status is Status.WARNING


def test_after_a_failed_import_the_commands_continue_or_reopen_with_the_same_target() -> None:
    """Resume and reopen carry the run id and every target flag; gcloud restores the saved
    ingress exactly."""
    resume, reopen, gcloud = next_commands(PLAN, TARGET, "RUN1", IMPORT, validate_flags=[])
    args = shlex.split(resume.split(": ", 1)[1])
    assert args[:5] == ["mlsgw", "restore", "gs://b/x", "--resume", "RUN1"]
    assert ["--ledger", "gs://a/l.jsonl"] == args[
        args.index("--ledger") : args.index("--ledger") + 2
    ]
    assert shlex.split(reopen.split(": ", 1)[1])[:4] == ["mlsgw", "restore", "--reopen", "RUN1"]
    assert gcloud.endswith(
        "gcloud run services update mlsgw --region europe-west1 --project p "
        "--ingress=internal-and-cloud-load-balancing"
    )


def test_after_validation_fails_resume_is_offered_and_after_reopen_fails_only_reopen() -> None:
    """A failed reopen has nothing left to continue but reopening."""
    assert len(next_commands(PLAN, TARGET, "R", VALIDATE, validate_flags=[])) == 3
    only = next_commands(PLAN, TARGET, "R", REOPEN, validate_flags=[])
    assert len(only) == 2 and "--reopen R" in only[0]


def test_plan_lists_every_step_in_order() -> None:
    """Stop, import, validate, reopen, healthcheck."""
    fields = [(c.field, c.after) for c in PLAN.changes()]
    assert fields[0] == ("ingress", "internal")
    assert fields[1] == ("import", "gs://b/x")
    assert fields[3] == ("ingress", "internal-and-cloud-load-balancing")
    assert "skipped" in fields[2][1]
