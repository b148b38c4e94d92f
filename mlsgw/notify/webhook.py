"""A Slack or Google Chat incoming webhook: POST ``{"text": …}`` as JSON.

Both accept a JSON object whose ``text`` is the message, so one payload serves both. The URL
is the credential (it carries the token), so reports and errors name only its scheme and host.
Only ``http://`` and ``https://`` URLs are accepted, and the sender's opener has no handler
for any other scheme (urllib's default one would read ``file://`` and fetch ``ftp://``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from mlsgw.errors import UsageError
from mlsgw.notify.base import Delivery
from mlsgw.urls import has_blank_or_control, port_of, split

SCHEMES = ("http", "https")


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a webhook, or ``None`` for an http(s) URL with a host."""
    if has_blank_or_control(url):
        return "contains spaces or control characters"
    parts = split(url)
    if isinstance(parts, str):
        return parts
    if port_of(parts) == 0:
        return "is not a valid URL (its port is not a number 1-65535)"
    if "://" not in url:
        return "does not start with http:// or https://"
    if parts.scheme.lower() not in SCHEMES:
        return f"has the scheme {parts.scheme}://"
    if not parts.hostname:
        return "has no host"
    return None


def check_webhook_url(url: str, source: str) -> None:
    """:class:`UsageError` naming ``source`` (``--webhook``, ``[ops] in FILE``, ``env …``)
    unless ``url`` is an ``http://`` or ``https://`` URL with a host; the message never
    repeats the URL, which carries the webhook's token."""
    problem = _url_problem(url)
    if problem is not None:
        raise UsageError(
            f"{source}: give an https:// (or http://) URL with a host for the incident "
            f"webhook; the value given {problem}"
        )


def _opener() -> urllib.request.OpenerDirector:
    """urllib's opener with only the HTTP(S) handlers: any other scheme, a redirect to one
    included, is ``unknown url type`` (a failed delivery), never opened."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class WebhookNotifier:
    """:class:`~mlsgw.notify.base.Notifier` over an incoming-webhook URL."""

    def __init__(self, url: str, timeout: float, source: str = "--webhook") -> None:
        """:class:`UsageError` naming ``source`` unless ``url`` is an http(s) URL with a host,
        so a bad webhook is refused before anything is recorded."""
        check_webhook_url(url, source)
        self.url = url
        self.timeout = timeout

    @property
    def where(self) -> str:
        """``https://hooks.slack.com/…`` (the secret path left out)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…"

    def send(self, text: str) -> Delivery:
        """POST the notice; any answer but 2xx, or no answer within the timeout, is a failure.
        Only http(s) is ever opened, redirects included."""
        body = json.dumps({"text": text}).encode()
        try:
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json; charset=UTF-8"},
            )
            if request.type not in SCHEMES:
                raise ValueError(f"unknown url type: {request.type}")
            with _opener().open(request, timeout=self.timeout) as response:
                return Delivery(True, f"HTTP {response.status} from {self.where}")
        except urllib.error.HTTPError as exc:
            return Delivery(False, f"HTTP {exc.code} from {self.where}")
        except (OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return Delivery(False, f"{self.where} unreachable: {reason}")
