"""``[cluster]`` validation: what ``config check`` says about the bus settings."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, load_config


def load(**environ: str) -> None:
    load_config(None, {"MLSGW_CONFIG": "", **environ})


@pytest.mark.parametrize(
    "url", ["redis://10.0.0.3:6379/0", "rediss://:secret@10.0.0.3:6378/0", "unix:///run/r.sock"]
)
def test_redis_urls_the_client_accepts_pass(url: str) -> None:
    load(MLSGW_CLUSTER__REDIS_URL=url)


@pytest.mark.parametrize("url", ["http://10.0.0.3:6379", "10.0.0.3:6379", "secret-host"])
def test_other_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(MLSGW_CLUSTER__REDIS_URL=url)
    problems = "\n".join(caught.value.problems)
    assert "cluster.redis_url: expected a redis://, rediss:// or unix:// URL" in problems
    assert url not in problems


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:s3cret@10.0.0.3:notaport/0", "Port could not be cast"),
        ("redis://:s3cret@10.0.0.3:6379/0?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_a_redis_url_the_client_cannot_use_is_refused_as_serve_would(url: str, said: str) -> None:
    """``config check`` runs the client's own parse: what it passes, ``serve`` starts with."""
    with pytest.raises(ConfigError) as caught:
        load(MLSGW_CLUSTER__REDIS_URL=url)
    problems = "\n".join(caught.value.problems)
    assert "cluster.redis_url:" in problems and said in problems
    assert "s3cret" not in problems


@pytest.mark.parametrize("prefix", ["", "two words"])
def test_a_prefix_must_name_a_channel(prefix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(MLSGW_CLUSTER__PREFIX=prefix)
    assert any("cluster.prefix" in p for p in caught.value.problems)
