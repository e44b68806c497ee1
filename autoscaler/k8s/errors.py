"""The Kubernetes adapter's errors: what went wrong, and whether trying again can help.

Why one place: the official client raises ``ApiException`` with an HTTP code, urllib3 raises its
own connection errors, and the controller must decide per failure whether to keep the last good
decision and try next tick (retryable: 409, 429, 5xx, the network) or to report the problem on
the SLOPolicy and stop trying until something changes (terminal: 400/422 invalid, 401/403
forbidden, 404 not found). :func:`translate` is the only code that looks at client exceptions.
"""

from __future__ import annotations

import json


class KubernetesError(Exception):
    """A failed API call. ``kind`` is a stable label for the error counter."""

    retryable = False
    kind = "api"

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class RetryableError(KubernetesError):
    """Transient: the next tick may succeed (throttling, server errors, network)."""

    retryable = True
    kind = "transient"


class ConflictError(RetryableError):
    """409 Conflict: the object changed since it was read; re-read, then write again once."""

    kind = "conflict"


class TerminalError(KubernetesError):
    """Retrying the same request cannot help."""

    kind = "terminal"


class NotFoundError(TerminalError):
    kind = "not_found"


class InvalidError(TerminalError):
    """400/422: the server refused the object (a bug in what we wrote, or a schema mismatch)."""

    kind = "invalid"


class ForbiddenError(TerminalError):
    """401/403: RBAC or credentials."""

    kind = "forbidden"


def _message(body: object, fallback: str) -> str:
    if isinstance(body, (str, bytes)) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return fallback
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return fallback


def translate(exc: BaseException, what: str) -> KubernetesError:
    """Map a client-side exception raised while doing ``what`` to this hierarchy."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, KubernetesError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        msg = f"{what}: {status} {_message(exc.body, str(exc.reason or ''))}"
        if status == 409:
            body = _message(exc.body, "")
            if "already exists" in body:
                return TerminalError(msg, status, "AlreadyExists")
            return ConflictError(msg, status, "Conflict")
        if status == 404:
            return NotFoundError(msg, status, "NotFound")
        if status in (400, 422):
            return InvalidError(msg, status, "Invalid")
        if status in (401, 403):
            return ForbiddenError(msg, status, "Forbidden")
        if status == 429 or status >= 500 or status == 0:
            return RetryableError(msg, status, "ServerError")
        return TerminalError(msg, status, "Unexpected")
    if isinstance(exc, (HTTPError, OSError, TimeoutError)):
        return RetryableError(f"{what}: {type(exc).__name__}: {exc}", None, "Network")
    return TerminalError(f"{what}: {type(exc).__name__}: {exc}", None, "Unexpected")
