"""Vendor exceptions -> :mod:`mlsgw.errors`, at the edge of every adapter.

REST maps errors by HTTP status only (400 ``BadRequest``, 409 ``Conflict``, 412
``PreconditionFailed``), gRPC by status code (``InvalidArgument``, ``Aborted``); both are caught
through their common base classes. A failed precondition (Cloud Storage's ``ifGenerationMatch``)
is a concurrent change, like an etag conflict. An answer that is not the API's JSON (a proxy's
HTML page, a wrong ``--endpoint``) is a cloud error: the API was reached, but said nothing
usable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.protobuf import json_format

from mlsgw import errors
from mlsgw.gcp.credentials import without_urls

_PERMISSION = re.compile(r"[Pp]ermission '?([a-z]+(?:\.[A-Za-z]+){2,})'? (?:is )?denied")

_REQUEST_PREFIX = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")
"""api_core prefixes REST errors with the request (``GET http://…?%24alt=json…: ``)."""
ADC_HINT = (
    "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS); "
    "for a local stand-in pass --endpoint"
)


def _missing_permission(exc: api.GoogleAPICallError, fallback: str | None) -> str | None:
    metadata = exc.metadata or {}
    if metadata.get("permission"):
        return str(metadata["permission"])
    match = _PERMISSION.search(exc.message or "")
    return match.group(1) if match else fallback


NOT_JSON = (json_format.ParseError, json.JSONDecodeError, requests.JSONDecodeError)
"""What the clients raise on an answer that is not the JSON they expect: the generated REST
transports ``ParseError``, ``requests``-based ones (Logging, Storage) ``JSONDecodeError``."""


def translate(
    exc: BaseException, what: str, permission: str | None = None, endpoint: str | None = None
) -> errors.MlsgwError | None:
    """Our error for a vendor exception raised while doing ``what`` (against ``endpoint``,
    named when given), or ``None`` if foreign."""
    if isinstance(exc, NOT_JSON):  # before RequestException: the API was reached
        at = f" at {endpoint}" if endpoint else ""
        detail = without_urls(str(exc.__cause__ or exc)).rstrip(".")
        return errors.CloudError(
            f"the API{at} answered something that is not its JSON while trying to {what} ({detail})"
        )
    if isinstance(exc, auth.DefaultCredentialsError):
        return errors.NoCredentials(f"no Google credentials to {what}: {ADC_HINT}")
    if isinstance(exc, auth.RefreshError):
        return errors.NoCredentials(
            f"Google credentials were rejected while trying to {what}: {without_urls(str(exc))}"
        )
    if isinstance(exc, auth.TransportError | requests.RequestException):
        return errors.Unavailable(f"cannot reach the API to {what}: {without_urls(str(exc))}")
    if isinstance(exc, api.RetryError):
        return errors.Unavailable(f"gave up retrying to {what}: {exc.cause or exc}")
    if not isinstance(exc, api.GoogleAPICallError):
        return None
    message = _REQUEST_PREFIX.sub("", exc.message or str(exc))
    if isinstance(exc, api.Unauthorized):
        return errors.NoCredentials(f"credentials not accepted to {what}: {message}; {ADC_HINT}")
    if isinstance(exc, api.Forbidden):
        missing = _missing_permission(exc, permission)
        hint = f"; grant a role with {missing}" if missing else ""
        return errors.PermissionDenied(f"permission denied to {what}: {message}{hint}", missing)
    if isinstance(exc, api.NotFound):
        return errors.NotFound(f"not found while trying to {what}: {message}")
    if isinstance(exc, api.Conflict | api.PreconditionFailed):
        return errors.Conflict(f"concurrent change while trying to {what}: {message}")
    if isinstance(exc, api.TooManyRequests):
        return errors.QuotaExceeded(
            f"quota or rate limit hit while trying to {what}: {message}; retry later "
            "or raise the quota in the console (IAM & Admin > Quotas)"
        )
    if isinstance(exc, api.ServiceUnavailable | api.GatewayTimeout):
        return errors.Unavailable(f"the API did not answer to {what}: {message}")
    return errors.CloudError(f"failed to {what}: {exc.code} {message}")


@contextmanager
def vendor_errors(
    what: str, permission: str | None = None, endpoint: str | None = None
) -> Iterator[None]:
    """Re-raise vendor exceptions in the block as :mod:`mlsgw.errors` ones (see
    :func:`translate`)."""
    try:
        yield
    except errors.MlsgwError:
        raise
    except Exception as exc:
        ours = translate(exc, what, permission, endpoint)
        if ours is None:
            raise
        raise ours from exc
