"""Application Default Credentials, looked up once per command within a bound.

google-auth's own lookup ends with the GCE metadata server, which it pings with a 3 s
timeout three times; off Google Cloud, behind a firewall that drops packets, that alone
takes longer than NRPE waits for a plugin. The lookup therefore runs in a daemon thread and
the command waits at most ``bound`` seconds: no answer in time means no credentials.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from mlsgw.errors import NoCredentials

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
LOGIN_HINT = "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS)"
_URL = re.compile(r"\s*\(?https?://\S+")


def without_urls(text: str) -> str:
    """``text`` without the documentation and API URLs google-auth puts in its messages."""
    return " ".join(_URL.sub("", text).split())


def find_credentials(bound: float) -> Any:
    """The Application Default Credentials, found within ``bound`` seconds.

    Raises :class:`NoCredentials` with one line saying how to fix it when there are none,
    when the file named by ``GOOGLE_APPLICATION_CREDENTIALS`` cannot be used, or when the
    lookup (the metadata server) does not answer in time.
    """
    found: dict[str, Any] = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            import google.auth

            found["credentials"], _ = google.auth.default(scopes=SCOPES)
        except Exception as exc:  # translated below, in the waiting thread
            found["error"] = exc
        finally:
            done.set()

    threading.Thread(target=look_up, name="mlsgw-credentials", daemon=True).start()
    if not done.wait(bound):
        raise NoCredentials(
            f"no Google credentials found within {bound:g} s (the metadata server did not "
            f"answer): {LOGIN_HINT}"
        )
    error = found.get("error")
    if error is None:
        return found["credentials"]
    from google.auth import exceptions as auth

    if not isinstance(error, auth.GoogleAuthError):
        raise error
    explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        reason = without_urls(str(error)).rstrip(".")
        raise NoCredentials(
            f"GOOGLE_APPLICATION_CREDENTIALS={explicit} cannot be used ({reason}): {LOGIN_HINT}"
        ) from error
    raise NoCredentials(f"no Google credentials: {LOGIN_HINT}") from error
