"""The runbook's errors: one root, :class:`MlsgwError`, and a small documented tree.

Adapters translate vendor exceptions (``google.api_core``, ``google.auth``, ``grpc``) into
these at the edge (:mod:`mlsgw.gcp.errors`); nothing above the adapters sees a vendor type.
Every message says what to do next.

::

    MlsgwError
    ├── UsageError            bad or missing arguments (project, region, ...)
    │   └── NoEndpointOverride  an API has no endpoint override while another has one
    ├── Refused               a precondition or safety rule stopped the action
    ├── LedgerError           the ledger cannot be read or written
    ├── EvidenceError         an evidence directory cannot be written
    └── CloudError            a Google Cloud call failed
        ├── NoCredentials     no usable credentials (ADC missing or rejected)
        ├── PermissionDenied  the principal lacks a permission (``permission`` names it)
        ├── NotFound          the resource does not exist
        ├── Conflict          a concurrent change (etag mismatch, already exists)
        ├── QuotaExceeded     rate or quota limit
        ├── Unavailable       the API could not be reached or timed out
        └── OperationFailed   a long-running operation finished with an error
"""

from __future__ import annotations


class MlsgwError(Exception):
    """Root of every error the runbook raises on purpose."""


class UsageError(MlsgwError):
    """Arguments are missing or invalid (exit 3)."""


class NoEndpointOverride(UsageError):
    """An endpoint override is set, but none for the API a call needs, so the call is not
    made (nothing falls back to Application Default Credentials). A command that needs the
    API exits 3; a check or task that merely uses it is reported as skipped with the reason."""


class Refused(MlsgwError):
    """A precondition or a safety rule stopped an action before it changed anything (exit 3)."""


class LedgerError(MlsgwError):
    """The ledger file cannot be read, parsed or appended to."""


class EvidenceError(MlsgwError):
    """An evidence directory could not be written."""


class CloudError(MlsgwError):
    """A Google Cloud API call failed."""


class NoCredentials(CloudError):
    """No usable Google credentials."""


class PermissionDenied(CloudError):
    """The caller lacks a permission; ``permission`` is the missing one when known."""

    def __init__(self, message: str, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


class NotFound(CloudError):
    """The resource does not exist (or is not visible to the caller)."""


class Conflict(CloudError):
    """The resource changed concurrently (etag mismatch) or already exists."""


class QuotaExceeded(CloudError):
    """A rate limit or quota was hit; retry later or raise the quota."""


class Unavailable(CloudError):
    """The API could not be reached or did not answer in time."""


class OperationFailed(CloudError):
    """A long-running operation completed with an error."""


def not_utf8(exc: UnicodeDecodeError) -> str:
    """``not UTF-8 text (invalid start byte at byte 0)``: how a file or line that does not
    decode is described, wherever it is read."""
    return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
