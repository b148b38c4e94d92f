"""mlsgw's Nostr relay: a pure protocol core (``relay.core``) driven by one asyncio server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlsgw")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
