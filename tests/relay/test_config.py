"""relay.config: TOML with rnostr names, MLSGW_* and PORT overrides, precise errors (R-C1)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from relay.config import (
    DEFAULT_RATE_RULES,
    Config,
    ConfigError,
    load_config,
    parse_duration,
    redacted_dict,
)

REPO = Path(__file__).resolve().parents[2]
RNOSTR_EXAMPLE = REPO / "tests" / "fixtures" / "rnostr.toml"
SHIPPED = REPO / "config" / "mlsgw.toml"
RNOSTR_KEY = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
# NIP-19's own example.
NPUB = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
NPUB_HEX = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"


def write(tmp_path: Path, text: str, name: str = "mlsgw.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- files ---------------------------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, so config/mlsgw.toml is not picked up by default."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_without_a_file(elsewhere: Path) -> None:
    """No file and no environment: the built-in, secure defaults."""
    config = load_config(None, {"MLSGW_CONFIG": ""})
    assert config == Config()
    assert config.source is None and config.ignored == ()
    assert config.auth.enabled is True and config.auth.allowed_pubkeys == frozenset()
    assert config.network.port == 8080 and config.store_backend == "sqlite"
    assert config.rate_limiter.event == DEFAULT_RATE_RULES
    assert {r.kinds: (r.limit, r.period) for r in DEFAULT_RATE_RULES} == {
        (445,): (100, 60.0),
        (446,): (50, 60.0),
        (443,): (10, 3600.0),
    }


def test_shipped_config_file_is_valid_and_equals_the_defaults() -> None:
    """config/mlsgw.toml documents every default and loads to the same values."""
    config = load_config(SHIPPED, {})
    assert config.source == str(SHIPPED) and config.ignored == ()
    sections = ("information", "network", "limitation", "auth", "rate_limiter", "data", "cluster")
    for section in sections:
        assert getattr(config, section) == getattr(Config(), section), section
    assert config.mls_gateway == Config().mls_gateway


def test_shipped_config_file_names_every_key() -> None:
    """Every setting of every section appears in config/mlsgw.toml, set or commented out
    (rnostr's sub-tables, [auth.req] and [[rate_limiter.event]], are described there)."""
    text = SHIPPED.read_text()
    config = Config()
    tables = {("auth", "req"), ("auth", "event"), ("rate_limiter", "event")}
    sections = ("information", "network", "limitation", "auth", "rate_limiter", "data")
    for section in (*sections, "cluster", "mls_gateway"):
        for f in dataclasses.fields(getattr(config, section)):
            if (section, f.name) not in tables:
                assert re.search(rf"^#? ?{f.name} =", text, re.MULTILINE), (section, f.name)


def test_rnostr_example_loads_unchanged_and_reports_ignored_keys() -> None:
    """The operators' rnostr.toml is accepted; unused rnostr keys are listed, not errors."""
    config = load_config(RNOSTR_EXAMPLE, {})
    ignored = "\n".join(config.ignored)
    for name in (
        "[count]",
        "[search]",
        "data.db_query_timeout",
        "limitation.min_prefix",
        "extensions.mls_gateway.welcome_ttl",
        "extensions.mls_gateway.enable_message_archive",
    ):
        assert name in ignored, name
    assert len(config.ignored) == 6


def test_rnostr_example_values_are_honoured() -> None:
    """Every key of the rnostr example that mlsgw understands takes effect."""
    config = load_config(RNOSTR_EXAMPLE, {})
    assert config.information.name == "MLS Secure Relay"
    assert config.network.port == 8080 and config.network.host == "0.0.0.0"
    assert config.network.heartbeat_interval == 60.0 and config.network.heartbeat_timeout == 120.0
    assert config.limitation.max_message_length == 1048576
    assert config.limitation.max_event_tags == 5000
    assert config.metrics.enabled is True and config.metrics.auth == "change-me-metrics-key"
    assert config.auth.allowed_pubkeys == {RNOSTR_KEY}
    assert [(r.name, r.limit, r.period, r.kinds) for r in config.rate_limiter.event] == [
        ("mls_group_messages", 100, 60.0, (445,)),
        ("noise_dms", 50, 60.0, (446,)),
    ]
    assert config.mls_gateway.keypackage_ttl == 604800.0
    assert config.mls_gateway.max_keypackages_per_user == 15
    assert config.store_backend == "firestore"


def test_default_rate_rules_stay_for_kinds_the_file_does_not_limit() -> None:
    """The rnostr example limits 445 and 446 only; the default 443 limit stays in force."""
    config = load_config(RNOSTR_EXAMPLE, {})
    assert [(r.name, r.limit, r.kinds) for r in config.rate_limiter.rules] == [
        ("mls_group_messages", 100, (445,)),
        ("noise_dms", 50, (446,)),
        ("keypackages", 10, (443,)),
    ]


RNOSTR_RULES = """
[rate_limiter]
clear_interval = "30s"

[[rate_limiter.event]]
name = "all"
description = "allow only ten events per minute"
period = "1m"
limit = 10
kinds = [[0, 40000]]
ip_whitelist = ["127.0.0.1"]

[[rate_limiter.event]]
name = "mixed"
period = "60s"
limit = 5
kinds = [1, 2, [30000, 40000]]

[[rate_limiter.event]]
name = "everything"
limit = 100
"""


def test_rnostr_rate_rules_load_with_ranges_ip_whitelists_and_clear_interval(
    tmp_path: Path,
) -> None:
    """rnostr's documented rule keys load unchanged (R-C1): kind ranges (end excluded),
    mixed lists, a rule without kinds (every kind), a per-rule ip_whitelist."""
    config = load_config(write(tmp_path, RNOSTR_RULES), {})
    rules = config.rate_limiter.event
    assert [(r.name, r.kinds, r.ip_whitelist) for r in rules] == [
        ("all", ((0, 40000),), ("127.0.0.1",)),
        ("mixed", (1, 2, (30000, 40000)), ()),
        ("everything", (), ()),
    ]
    assert config.rate_limiter.clear_interval == 30.0
    assert [r.covers(k) for r in rules for k in (445, 39999, 40000)] == [
        True, True, False, False, True, False, True, True, True,
    ]  # fmt: skip
    # They cover 443, 445 and 446: no default rule is added beside them.
    assert config.rate_limiter.rules == rules


def test_a_configured_range_replaces_only_the_defaults_it_covers(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[[rate_limiter.event]]\nname = 'r'\nlimit = 1\nkinds = [[440, 446]]\n"),
        {},
    )
    assert [r.name for r in config.rate_limiter.rules] == ["r", "noise_dms"]


def test_auth_req_and_event_whitelists_merge_into_the_allowlist(tmp_path: Path) -> None:
    """[auth], [auth.req] and [auth.event] pubkey lists together form the R-A2 allowlist."""
    path = write(
        tmp_path,
        f'[auth]\npubkey_whitelist = ["{"aa" * 32}"]\n'
        f'[auth.req]\npubkey_whitelist = ["{"bb" * 32}"]\nip_blacklist = ["10.0.0.0/8"]\n'
        f'[auth.event]\npubkey_whitelist = ["{NPUB}"]\n',
    )
    auth = load_config(path, {}).auth
    assert auth.allowed_pubkeys == {"aa" * 32, "bb" * 32, NPUB_HEX}
    assert [str(n) for n in auth.blocked_networks] == ["10.0.0.0/8"]


def test_typo_key_is_an_error_naming_the_file_and_key(tmp_path: Path) -> None:
    """``prot`` in [network] is refused with the file path and the dotted key."""
    path = write(tmp_path, "[network]\nprot = 8080\n")
    assert problems_of(path) == [f"{path}: unknown key 'network.prot'"]


def test_typo_in_a_nested_table_and_unknown_sections_are_errors(tmp_path: Path) -> None:
    """Unknown keys in [auth.req], unknown tables and unknown extensions are all reported."""
    path = write(
        tmp_path,
        "[auth.req]\npubkey_whitelst = []\n[netwrk]\nport = 1\n[extensions.other]\nx = 1\n",
    )
    problems = problems_of(path)
    assert f"{path}: unknown key 'auth.req.pubkey_whitelst'" in problems
    assert f"{path}: unknown section [netwrk]" in problems
    assert f"{path}: unknown section [extensions.other]" in problems


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[network]\nport = "8080"', "network.port: expected integer, got '8080'"),
        ("[network]\nport = -1", "network.port: expected a non-negative integer, got -1"),
        ('[auth]\nenabled = "yes"', "auth.enabled: expected boolean, got 'yes'"),
        ("[limitation]\nmax_limit = 1.5", "limitation.max_limit: expected integer, got 1.5"),
        ("[limitation]\nmax_filters = true", "limitation.max_filters: expected integer, got True"),
        (
            '[network]\nheartbeat_interval = "soon"',
            "network.heartbeat_interval: expected duration (seconds or a string like '60s')",
        ),
        (
            '[extensions.mls_gateway]\ndelivery = "maybe"',
            "extensions.mls_gateway.delivery: expected one of 'enforce', 'open', got 'maybe'",
        ),
        ('[auth]\npubkey_whitelist = "abc"', "auth.pubkey_whitelist: expected array of strings"),
        ("[auth]\npubkey_whitelist = [1]", "auth.pubkey_whitelist: expected string, got 1"),
        (
            '[auth]\npubkey_whitelist = ["nothex"]',
            "auth.pubkey_whitelist: expected a hex or npub pubkey",
        ),
        (
            '[auth]\nip_whitelist = ["10.0.0.0/33"]',
            "auth.ip_whitelist: expected an IP address or CIDR range, got '10.0.0.0/33'",
        ),
        (
            "[[rate_limiter.event]]\nname = 'x'",
            "rate_limiter.event[0].limit: required key is missing",
        ),
        (
            "[[rate_limiter.event]]\nname = 'x'\nlimit = 1\nkinds = ['1']",
            "rate_limiter.event[0].kinds: expected an array of kinds and [start, end] ranges",
        ),
        (
            "[[rate_limiter.event]]\nname = 'x'\nlimit = 1\nkinds = [[5, 3]]",
            "rate_limiter.event[0].kinds: expected an array of kinds and [start, end] ranges",
        ),
        ("network = 5", "network: expected a table, got 5"),
    ],
)
def test_wrong_types_name_the_file_key_and_expected_type(
    tmp_path: Path, toml: str, expected: str
) -> None:
    """Each wrong value is reported as ``<file>: <key>: expected <type>, got <value>``."""
    path = write(tmp_path, toml + "\n")
    problems = problems_of(path)
    assert any(p.startswith(f"{path}: {expected}") for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Several mistakes give several lines, not just the first."""
    path = write(tmp_path, '[network]\nprot = 1\nport = "x"\n[auth]\nenabled = 3\n')
    assert len(problems_of(path)) == 3


def test_npub_keys_are_decoded_to_hex(tmp_path: Path) -> None:
    """npub1… entries in pubkey lists become lowercase hex; uppercase hex is normalised."""
    path = write(
        tmp_path,
        f'[auth]\npubkey_whitelist = ["{NPUB}", "{"AB" * 32}"]\n'
        f'[extensions.mls_gateway]\nadmin_pubkeys = ["{NPUB}"]\n',
    )
    config = load_config(path, {})
    assert config.auth.pubkey_whitelist == (NPUB_HEX, "ab" * 32)
    assert config.mls_gateway.admin_pubkeys == (NPUB_HEX,)


@pytest.mark.parametrize(
    "bad",
    [
        NPUB[:-1] + ("q" if NPUB[-1] != "q" else "p"),  # checksum
        "nsec1" + NPUB[5:],  # wrong prefix, and not hex
        "npub1qqqqqqqq",  # too short
        "ab" * 31,
    ],
)
def test_bad_npub_or_hex_is_an_error(tmp_path: Path, bad: str) -> None:
    """A corrupt npub or short hex key is refused with the key named."""
    path = write(tmp_path, f'[auth]\npubkey_whitelist = ["{bad}"]\n')
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: auth.pubkey_whitelist: expected a hex or npub pubkey")


def test_missing_file_and_invalid_toml_are_errors(tmp_path: Path) -> None:
    """A path that does not exist or does not parse is a ConfigError with the path."""
    missing = tmp_path / "nope.toml"
    assert problems_of(missing) == [f"{missing}: file not found"]
    broken = write(tmp_path, "[network\nport = 1\n", "broken.toml")
    (problem,) = problems_of(broken)
    assert problem.startswith(f"{broken}: invalid TOML")


def test_mlsgw_config_env_names_the_file(tmp_path: Path) -> None:
    """``MLSGW_CONFIG`` selects the file when no path is given."""
    path = write(tmp_path, "[network]\nport = 1234\n")
    config = load_config(None, {"MLSGW_CONFIG": str(path)})
    assert config.network.port == 1234 and config.source == str(path)


def test_consistency_checks(tmp_path: Path) -> None:
    """heartbeat_timeout must exceed heartbeat_interval; port must be a port number."""
    path = write(tmp_path, '[network]\nheartbeat_interval = "2m"\nheartbeat_timeout = "1m"\n')
    (problem,) = problems_of(path)
    assert "heartbeat_timeout must be longer than network.heartbeat_interval" in problem
    path = write(tmp_path, "[network]\nport = 70000\n", "port.toml")
    assert "network.port" in problems_of(path)[0]
    path = write(tmp_path, "[network]\ntrusted_proxy_hops = 0\n", "hops.toml")
    assert "network.trusted_proxy_hops: expected at least 1" in problems_of(path)[0]


def test_a_problem_names_the_variable_when_the_value_came_from_the_environment(
    tmp_path: Path,
) -> None:
    """``PORT=70000`` (as Cloud Run or an operator sets it) is reported against the
    environment and the variable that said it, not against the file that did not."""
    path = write(tmp_path, "[network]\nheartbeat_interval = 30\n")
    (problem,) = problems_of(path, {"PORT": "70000"})
    assert problem.startswith("environment: PORT: network.port: expected a port number")
    (problem,) = problems_of(path, {"MLSGW_NETWORK__PORT": "70000"})
    assert problem.startswith(
        "environment: MLSGW_NETWORK__PORT: network.port: expected a port number"
    )
    (problem,) = problems_of(write(tmp_path, "[network]\nport = 70000\n", "port.toml"))
    assert problem.startswith(f"{tmp_path / 'port.toml'}: network.port")


def test_rest_api_needs_the_public_relay_url(tmp_path: Path) -> None:
    """``enable_api`` without ``information.relay_url`` is refused, saying why (a forged
    Host would otherwise make a NIP-98 token signed for another service valid)."""
    path = write(tmp_path, "[extensions.mls_gateway]\nenable_api = true\n")
    (problem,) = problems_of(path)
    assert "enable_api needs information.relay_url" in problem and "Host" in problem
    path = write(
        tmp_path,
        '[information]\nrelay_url = "wss://r.example"\n'
        "[extensions.mls_gateway]\nenable_api = true\n",
        "ok.toml",
    )
    assert load_config(path, {}).mls_gateway.enable_api is True


@pytest.mark.parametrize("url", ["relay.example.com", "wss://", "ftp://relay.example.com"])
def test_a_relay_url_without_a_scheme_and_host_is_refused(tmp_path: Path, url: str) -> None:
    """Every AUTH's relay tag is checked against this URL's host: one that names no host
    would refuse every AUTH, so the config says so at once."""
    path = write(tmp_path, f'[information]\nrelay_url = "{url}"\n')
    (problem,) = problems_of(path)
    assert "information.relay_url: expected the relay's public URL" in problem


@pytest.mark.parametrize(
    "url", ["wss://relay.example.com", "ws://10.0.0.3:8080", "https://relay.example.com/"]
)
def test_a_relay_url_with_a_scheme_and_host_is_accepted(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f'[information]\nrelay_url = "{url}"\n')
    assert load_config(path, {}).information.relay_url == url


# --- environment ---------------------------------------------------------------------------------


def test_env_overrides_file_values(tmp_path: Path) -> None:
    """``MLSGW_<SECTION>__<KEY>`` wins over the file, typed like the file."""
    path = write(tmp_path, "[network]\nport = 1000\n[auth]\nenabled = true\n")
    config = load_config(
        path,
        {
            "MLSGW_NETWORK__PORT": "2000",
            "MLSGW_AUTH__ENABLED": "false",
            "MLSGW_NETWORK__HEARTBEAT_INTERVAL": "5s",
            "MLSGW_NETWORK__REAL_IP_HEADER": "X-Forwarded-For",
            "MLSGW_LIMITATION__READ_ONLY": "1",
        },
    )
    assert config.network.port == 2000 and config.auth.enabled is False
    assert config.network.heartbeat_interval == 5.0
    assert config.network.real_ip_header == "X-Forwarded-For"
    assert config.limitation.read_only is True


def test_emergency_modes_are_settable_from_the_environment() -> None:
    """R-C3: read_only and maintenance can be flipped with env vars on a new revision."""
    config = load_config(
        None,
        {
            "MLSGW_LIMITATION__READ_ONLY": "true",
            "MLSGW_INFORMATION__MAINTENANCE": "yes",
            "MLSGW_INFORMATION__MAINTENANCE_MESSAGE": "back soon",
        },
    )
    assert config.limitation.read_only is True
    assert config.information.maintenance is True
    assert config.information.maintenance_message == "back soon"


def test_env_overrides_nested_auth_tables() -> None:
    """``MLSGW_AUTH__REQ__PUBKEY_WHITELIST`` sets [auth.req], as a comma list or TOML array."""
    config = load_config(None, {"MLSGW_AUTH__REQ__PUBKEY_WHITELIST": f"{NPUB}, {'aa' * 32}"})
    assert config.auth.req.pubkey_whitelist == (NPUB_HEX, "aa" * 32)
    assert config.auth.allowed_pubkeys == {NPUB_HEX, "aa" * 32}
    config = load_config(None, {"MLSGW_AUTH__EVENT__IP_BLACKLIST": '["10.0.0.0/8", "::1"]'})
    assert config.auth.event.ip_blacklist == ("10.0.0.0/8", "::1")


def test_env_nested_override_keeps_the_rest_of_the_file_table(tmp_path: Path) -> None:
    """Overriding one [auth.req] key keeps the file's other [auth.req] keys."""
    path = write(tmp_path, f'[auth.req]\npubkey_whitelist = ["{"aa" * 32}"]\n')
    config = load_config(path, {"MLSGW_AUTH__REQ__IP_WHITELIST": "10.0.0.0/8"})
    assert config.auth.req.pubkey_whitelist == ("aa" * 32,)
    assert config.auth.req.ip_whitelist == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    "name", ["MLSGW_MLS_GATEWAY__DELIVERY", "MLSGW_EXTENSIONS__MLS_GATEWAY__DELIVERY"]
)
def test_env_reaches_the_mls_gateway_section(name: str) -> None:
    """The gateway section is reachable by its short and its full name."""
    assert load_config(None, {name: "open"}).mls_gateway.delivery == "open"


def test_env_sets_the_rate_limiter_section() -> None:
    """[rate_limiter] scalar keys can be set from the environment."""
    config = load_config(None, {"MLSGW_RATE_LIMITER__MESSAGES_PER_SECOND": "5"})
    assert config.rate_limiter.messages_per_second == 5


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MLSGW_NETWORK__PROT": "1"}, "environment: MLSGW_NETWORK__PROT: unknown key 'prot'"),
        ({"MLSGW_NETWRK__PORT": "1"}, "environment: MLSGW_NETWRK__PORT: unknown section 'netwrk'"),
        (
            {"MLSGW_NETWORK__PORT": "eighty"},
            "environment: MLSGW_NETWORK__PORT: network.port: expected integer, got 'eighty'",
        ),
        (
            {"MLSGW_AUTH__ENABLED": "perhaps"},
            "environment: MLSGW_AUTH__ENABLED: auth.enabled: expected boolean, got 'perhaps'",
        ),
        (
            {"MLSGW_AUTH__PUBKEY_WHITELIST": "npub1bad"},
            "environment: MLSGW_AUTH__PUBKEY_WHITELIST: auth.pubkey_whitelist:"
            " expected a hex or npub pubkey",
        ),
        (
            {"MLSGW_AUTH__REQ__PUBKEY_WHITELIST": "npub1bad"},
            "environment: MLSGW_AUTH__REQ__PUBKEY_WHITELIST: auth.req.pubkey_whitelist:"
            " expected a hex or npub pubkey",
        ),
        (
            {"MLSGW_MLS_GATEWAY__DELIVERY": "sometimes"},
            "environment: MLSGW_MLS_GATEWAY__DELIVERY: extensions.mls_gateway.delivery:"
            " expected one of 'enforce', 'open'",
        ),
        (
            {"MLSGW_RATE_LIMITER__EVENT": "x"},
            "environment: MLSGW_RATE_LIMITER__EVENT: rate_limiter.event can only be set in",
        ),
        ({"PORT": "http"}, "environment: PORT: expected integer, got 'http'"),
    ],
)
def test_env_mistakes_are_errors_naming_the_variable(
    environ: dict[str, str], expected: str
) -> None:
    """Typos and wrong types in the environment are reported like file problems."""
    problems = problems_of(None, environ)
    assert any(p.startswith(expected) for p in problems), problems


def test_unrelated_mlsgw_variables_are_ignored(elsewhere: Path) -> None:
    """Variables without ``__`` (MLSGW_CONFIG, MLSGW_GCP_ENDPOINT) are not config keys."""
    config = load_config(None, {"MLSGW_GCP_ENDPOINT": "http://x", "MLSGW_CONFIG": ""})
    assert config == Config()


def test_port_overrides_file_and_mlsgw_network_port(tmp_path: Path) -> None:
    """Cloud Run's ``PORT`` has the last word."""
    path = write(tmp_path, "[network]\nport = 1000\n")
    config = load_config(path, {"MLSGW_NETWORK__PORT": "2000", "PORT": "3000"})
    assert config.network.port == 3000
    assert load_config(None, {"PORT": "9999"}).network.port == 9999


# --- durations and redaction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (2.5, 2.5),
        ("100ms", 0.1),
        ("60s", 60.0),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("45", 45.0),
        (" 3 s ", 3.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    """Numbers are seconds; strings take ms/s/m/h/d units."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "5 weeks", "-1s", -1, True, None, [1]])
def test_parse_duration_rejects_nonsense(value: object) -> None:
    """Anything else is a ValueError (reported as a config problem)."""
    with pytest.raises(ValueError):
        parse_duration(value)


def test_redacted_dict_hides_secrets() -> None:
    """metrics.auth, probe keys and redis passwords never appear in ``config show``."""
    config = load_config(
        None,
        {
            "MLSGW_METRICS__AUTH": "s3cret-metrics",
            "MLSGW_CLUSTER__REDIS_URL": "redis://user:p4ssword@redis:6379/0",
            "MLSGW_OPS__PROBE_KEY": "nsec-ish",
        },
    )
    document = redacted_dict(config)
    text = repr(document)
    assert "s3cret-metrics" not in text and "p4ssword" not in text and "nsec-ish" not in text
    assert document["metrics"]["auth"] == "***"
    assert document["cluster"]["redis_url"] == "redis://user:***@redis:6379/0"
    assert document["extensions"]["mls_gateway"]["delivery"] == "enforce"


def test_a_redis_password_with_an_at_sign_is_hidden_whole() -> None:
    """redis-py takes the userinfo up to the last ``@`` of the host part: so does
    ``config show``, or the password's tail would be printed as if it were the host."""
    config = load_config(
        None, {"MLSGW_CLUSTER__REDIS_URL": "redis://default:p@ss@w0rd@10.0.0.3:6379/0"}
    )
    assert redacted_dict(config)["cluster"]["redis_url"] == "redis://default:***@10.0.0.3:6379/0"


def test_redacted_dict_hides_the_path_of_a_webhook_url() -> None:
    """An incoming-webhook URL's path is its credential: only scheme and host are shown."""
    config = load_config(
        None, {"MLSGW_OPS__INCIDENT_WEBHOOK": "https://hooks.slack.com/services/T1/B2/tok3n"}
    )
    assert redacted_dict(config)["ops"]["incident_webhook"] == "https://hooks.slack.com/***"


def test_config_mlsgw_toml_in_the_working_directory_is_the_default(elsewhere: Path) -> None:
    """Without a path or MLSGW_CONFIG, ./config/mlsgw.toml is loaded when it exists."""
    (elsewhere / "config").mkdir()
    (elsewhere / "config" / "mlsgw.toml").write_text("[network]\nport = 4321\n")
    config = load_config(None, {})
    assert config.network.port == 4321 and config.source == "config/mlsgw.toml"


def test_mls_gateway_section_is_also_read_under_its_short_name(tmp_path: Path) -> None:
    """``[mls_gateway]`` (the name the environment takes too) is ``[extensions.mls_gateway]``;
    both at once is refused, naming them."""
    short = write(tmp_path, '[mls_gateway]\ndelivery = "open"\n', "short.toml")
    assert load_config(short, {}).mls_gateway.delivery == "open"
    both = write(
        tmp_path,
        '[mls_gateway]\ndelivery = "open"\n[extensions.mls_gateway]\ndelivery = "enforce"\n',
        "both.toml",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(both, {})
    assert "[mls_gateway] and [extensions.mls_gateway] both given" in str(refused.value.problems)


def test_max_keypackages_per_query_above_the_hard_cap_loads_and_is_served_as_two(
    tmp_path: Path,
) -> None:
    """Any value of at least 1 loads (the gateway serves at most 2 per author); 0 is refused."""
    config = write(tmp_path, "[extensions.mls_gateway]\nmax_keypackages_per_query = 5\n")
    assert load_config(config, {}).mls_gateway.max_keypackages_per_query == 5
    zero = write(tmp_path, "[extensions.mls_gateway]\nmax_keypackages_per_query = 0\n", "z.toml")
    with pytest.raises(ConfigError) as refused:
        load_config(zero, {})
    assert "max_keypackages_per_query: expected at least 1" in str(refused.value.problems)


def test_on_cloud_run_the_client_ip_comes_from_x_forwarded_for_unless_set(
    tmp_path: Path,
) -> None:
    """``K_SERVICE`` set (Cloud Run) and ``real_ip_header`` unset: ``x-forwarded-for`` (the
    front end appends the client's address). A value in the file or environment wins, and
    ``""`` turns it off; off Cloud Run nothing changes."""
    cloud_run = {"K_SERVICE": "mlsgw"}
    assert load_config(None, cloud_run).network.real_ip_header == "x-forwarded-for"
    assert load_config(None, {}).network.real_ip_header is None
    off = write(tmp_path, '[network]\nreal_ip_header = ""\n')
    assert load_config(off, cloud_run).network.real_ip_header == ""
    env = {**cloud_run, "MLSGW_NETWORK__REAL_IP_HEADER": "x-real-ip"}
    assert load_config(None, env).network.real_ip_header == "x-real-ip"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[ops]\ntimeout = 0\n", "ops.timeout"),
        ('[ops]\ntimeout = "2h"\n', "ops.timeout"),
        ("[ops]\nrpo_hours = 0\n", "ops.rpo_hours"),
        ("[ops]\nrpo_hours = 1e308\n", "ops.rpo_hours"),
    ],
)
def test_ops_timeout_and_rpo_out_of_bounds_are_problems(
    tmp_path: Path, body: str, key: str
) -> None:
    """``config check`` applies the bounds the runbook does: a zero timeout (every probe
    fails) or one past an hour, an RPO of 0 or beyond a year, is named as a problem."""
    (problem,) = problems_of(write(tmp_path, body))
    assert f"{key}: expected a number from 0.1 to" in problem
