"""mlsgw: the MLS-over-Nostr gateway (``mlsgw serve``) and its runbook as commands."""

from relay import __version__

__all__ = ["__version__"]
