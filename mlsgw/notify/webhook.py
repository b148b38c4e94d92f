"""A Slack or Google Chat incoming webhook: POST ``{"text": …}`` as JSON.

Both accept a JSON object whose ``text`` is the message, so one payload serves both. The URL
is the credential (it carries the token), so reports name only its scheme and host.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from mlsgw.notify.base import Delivery


class WebhookNotifier:
    """:class:`~mlsgw.notify.base.Notifier` over an incoming-webhook URL."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    @property
    def where(self) -> str:
        """``https://hooks.slack.com/…`` (the secret path left out)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…"

    def send(self, text: str) -> Delivery:
        """POST the notice; any answer but 2xx, or no answer within the timeout, is a failure."""
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Delivery(True, f"HTTP {response.status} from {self.where}")
        except urllib.error.HTTPError as exc:
            return Delivery(False, f"HTTP {exc.code} from {self.where}")
        except (OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return Delivery(False, f"{self.where} unreachable: {reason}")
