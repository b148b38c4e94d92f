"""Severities, contacts, times and the runbook's templates: pure logic, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlsgw.incidents.model import Incident, IncidentStatus, timelines
from mlsgw.incidents.severity import SEVERITIES, contacts_for, duration_text
from mlsgw.incidents.templates import notification, resolution
from mlsgw.incidents.when import parse_when, utc_text, utc_text_of

NOW = datetime(2026, 12, 1, 7, 15, tzinfo=UTC)
CONTACTS = (
    "sev1/sev2: Primary on-call <oncall@example.com>",
    "sev1: Engineering lead <lead@example.com>",
    "#mlsgw-incidents",
)
INCIDENT = Incident(
    id="INC-20261201-071500-abcdef",
    severity=1,
    title="Relay down",
    impact="No client can connect",
    status=IncidentStatus.INVESTIGATING,
    started=NOW - timedelta(minutes=5),
    commander="alice",
    next_update=NOW + timedelta(minutes=30),
)


def test_response_times_are_the_runbooks() -> None:
    """SEV1 15 min, SEV2 1 h, SEV3 4 h."""
    assert [duration_text(SEVERITIES[n].response) for n in (1, 2, 3)] == ["15 min", "1 h", "4 h"]


def test_contacts_apply_by_severity_prefix_and_unprefixed_to_all() -> None:
    """`sev1/sev2:` for both, `sev1:` for SEV1 only, no prefix for every level."""
    assert contacts_for(1, CONTACTS) == (
        "Primary on-call <oncall@example.com>",
        "Engineering lead <lead@example.com>",
        "#mlsgw-incidents",
    )
    assert contacts_for(2, CONTACTS) == ("Primary on-call <oncall@example.com>", "#mlsgw-incidents")
    assert contacts_for(3, CONTACTS) == ("#mlsgw-incidents",)


def test_notification_renders_every_field() -> None:
    """Title, severity with definition and response time, status, impact, start, next
    update, commander, escalation contacts and id all appear."""
    text = notification(INCIDENT, CONTACTS)
    for expected in (
        "🚨 INCIDENT: Relay down",
        "Severity: SEV1 (Critical: complete service outage",
        "response within 15 min",
        "Status: Investigating",
        "Impact: No client can connect",
        "Start Time: 2026-12-01 07:10 UTC",
        "Next Update: 2026-12-01 07:45 UTC",
        "Incident Commander: alice",
        "Escalation: Primary on-call <oncall@example.com>, Engineering lead <lead@example.com>",
        "Incident ID: INC-20261201-071500-abcdef",
    ):
        assert expected in text, expected


def test_update_notification_carries_the_note() -> None:
    """An update is marked as such and says what changed."""
    text = notification(INCIDENT, (), note="store quota exhausted", first=False)
    assert text.startswith("🔄 INCIDENT UPDATE: Relay down")
    assert "Update: store quota exhausted" in text and "(none configured" in text


def test_resolution_renders_duration_cause_fix_and_prevention() -> None:
    """The resolution template: duration from start to end, root cause, resolution, prevention."""
    done = Incident(
        **{
            **INCIDENT.__dict__,
            "status": IncidentStatus.RESOLVED,
            "ended": NOW + timedelta(minutes=67),
            "root_cause": "quota",
            "resolution": "raised the quota",
            "prevention": "alert at 80 %",
        }
    )
    text = resolution(done, CONTACTS)
    for expected in (
        "✅ RESOLVED: Relay down",
        "Duration: 2026-12-01 07:10 UTC – 2026-12-01 08:22 UTC (1 h 12 min)",
        "Root Cause: quota",
        "Resolution: raised the quota",
        "Prevention: alert at 80 %",
    ):
        assert expected in text, expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+30m", NOW + timedelta(minutes=30)),
        ("+2h", NOW + timedelta(hours=2)),
        ("14:00", NOW.replace(hour=14, minute=0)),
        ("2026-12-01T14:00Z", NOW.replace(hour=14, minute=0)),
        ("2026-12-01T15:00+01:00", NOW.replace(hour=14, minute=0)),
        ("2026-12-01 14:00", NOW.replace(hour=14, minute=0)),
    ],
)
def test_times_parse_in_utc(text: str, expected: datetime) -> None:
    """Relative, HH:MM today, ISO with or without zone (UTC)."""
    assert parse_when(text, NOW) == expected


def test_a_bad_time_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_when("tomorrow", NOW)


def test_timelines_follow_the_ledger_lines_in_order() -> None:
    """Each line's fields replace the previous ones; delivery lines join the timeline."""
    opened = INCIDENT.to_fields()
    updated = {**opened, "status": "identified"}
    records = [
        {
            "command": "incident open",
            "args": {"incident": INCIDENT.id},
            "result": {"incident": opened, "summary": "o"},
        },
        {"command": "rollback", "args": {}, "result": {}},
        {
            "command": "incident notify",
            "args": {"incident": INCIDENT.id},
            "result": {"summary": "n"},
        },
        {
            "command": "incident update",
            "args": {"incident": INCIDENT.id},
            "result": {"incident": updated, "summary": "u"},
        },
    ]
    (timeline,) = timelines(records).values()
    assert [e.event for e in timeline.entries] == ["open", "notify", "update"]
    assert timeline.incident.status is IncidentStatus.IDENTIFIED
    assert Incident.from_fields(opened) == INCIDENT


def test_shown_times_carry_the_year_and_the_zone_in_utc() -> None:
    """`2026-12-03 14:20 UTC`: converted to UTC, a zoneless time taken as UTC, a ledger
    stamp that does not parse shown as recorded."""
    east = timezone(timedelta(hours=1))
    assert utc_text(datetime(2026, 12, 3, 15, 20, 46, tzinfo=east)) == "2026-12-03 14:20 UTC"
    assert utc_text(datetime(2026, 12, 3, 14, 20)) == "2026-12-03 14:20 UTC"
    assert utc_text_of("2026-12-03T14:20:46+00:00") == "2026-12-03 14:20 UTC"
    assert utc_text_of("2026-12-03T14:20:46Z") == "2026-12-03 14:20 UTC"
    assert utc_text_of("not a time") == "not a time"


def test_notices_show_their_times_in_utc_whatever_zone_they_were_given_in() -> None:
    """A start recorded with another offset is shown converted, never relabelled as UTC."""
    east = timezone(timedelta(hours=1))
    started = datetime(2026, 12, 1, 8, 10, tzinfo=east)
    text = notification(Incident(**{**INCIDENT.__dict__, "started": started}), ())
    assert "Start Time: 2026-12-01 07:10 UTC" in text
