"""The gcloud CLI's own defaults: the properties of its active configuration.

gcloud keeps its configurations in ``$CLOUDSDK_CONFIG`` (default ``~/.config/gcloud``): the
file ``active_config`` names the active one (``$CLOUDSDK_ACTIVE_CONFIG_NAME`` overrides it;
``default`` when neither is set), and ``configurations/config_<NAME>`` is an INI file with
sections such as ``[core] project`` and ``[run] region``. Reading them lets an operator who
set up gcloud run the runbook without repeating the project and region.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GcloudProperty:
    """One property of the active gcloud configuration and where it was read."""

    value: str
    source: str
    """e.g. ``gcloud configuration 'prod' (core/project)``."""


def config_dir(environ: Mapping[str, str]) -> Path:
    """``$CLOUDSDK_CONFIG``, else ``~/.config/gcloud``."""
    if environ.get("CLOUDSDK_CONFIG"):
        return Path(environ["CLOUDSDK_CONFIG"]).expanduser()
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".config" / "gcloud"


def active_configuration(environ: Mapping[str, str]) -> str:
    """The active configuration's name: env, else the ``active_config`` file, else default."""
    if environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME"):
        return environ["CLOUDSDK_ACTIVE_CONFIG_NAME"]
    try:
        name = (config_dir(environ) / "active_config").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return "default"
    return name or "default"


def gcloud_property(environ: Mapping[str, str], section: str, key: str) -> GcloudProperty | None:
    """``section/key`` of the active configuration, or ``None`` when unset or unreadable.

    An unreadable or malformed file is treated as unset: gcloud's defaults are a convenience
    and must never stop a command.
    """
    name = active_configuration(environ)
    path = config_dir(environ) / "configurations" / f"config_{name}"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    value = parser.get(section, key, fallback="").strip()
    if not value:
        return None
    return GcloudProperty(value, f"gcloud configuration '{name}' ({section}/{key})")
