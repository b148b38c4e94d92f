"""What a backup keeps of the service: secrets out, the relay's own variables in."""

from __future__ import annotations

from mlsgw.backups.redact import REDACTED, redact_service, relay_environment

SERVICE = {
    "name": "projects/p/locations/r/services/s",
    "template": {
        "containers": [
            {
                "image": "img:1",
                "env": [
                    {"name": "MLSGW_METRICS__AUTH", "value": "k"},
                    {"name": "API_TOKEN", "value": "t"},
                    {"name": "MLSGW_LIMITATION__MAX_LIMIT", "value": "10"},
                    {"name": "SECRET_FROM_SM", "valueSource": {"secretKeyRef": {"secret": "x"}}},
                    {"name": "PORT", "value": "8080"},
                ],
            }
        ]
    },
}


def test_secret_looking_values_are_redacted_and_references_kept() -> None:
    """Plain values of secret-looking names become ***; secret references stay; the input
    is not modified."""
    env = redact_service(SERVICE)["template"]["containers"][0]["env"]
    values = {e["name"]: e.get("value", e.get("valueSource")) for e in env}
    assert values["MLSGW_METRICS__AUTH"] == REDACTED and values["API_TOKEN"] == REDACTED
    assert values["MLSGW_LIMITATION__MAX_LIMIT"] == "10"
    assert values["SECRET_FROM_SM"] == {"secretKeyRef": {"secret": "x"}}
    assert SERVICE["template"]["containers"][0]["env"][0]["value"] == "k"  # type: ignore[index]


def test_relay_environment_is_the_plain_mlsgw_variables_and_port() -> None:
    """What the relay reads over its config file."""
    assert relay_environment(SERVICE) == {
        "MLSGW_METRICS__AUTH": "k",
        "MLSGW_LIMITATION__MAX_LIMIT": "10",
        "PORT": "8080",
    }
    assert relay_environment({}) == {}
