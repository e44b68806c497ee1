"""How the controller's HTTP adapters (Prometheus, the predictor service) name a failed call.

Both count their faults by reason on ``/metrics``; one classification keeps the vocabulary the
same for an operator reading either counter: ``timeout`` (no answer within the client timeout),
``rejected`` (an unusable address, or HTTP 4xx: retrying will not help), ``unreachable`` (no
HTTP answer at all), ``server_error`` (HTTP 5xx or 429) and ``bad_response`` (any other status
than 200).
"""

from __future__ import annotations

import httpx

#: what the adapters catch around a request
CALL_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def call_fault(exc: httpx.HTTPError | httpx.InvalidURL) -> tuple[str, str]:
    """(reason, message) for a request that got no HTTP answer."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"timed out: {exc!r}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "rejected", f"bad address: {exc}"
    return "unreachable", f"no answer: {type(exc).__name__}: {exc}"


def status_fault(resp: httpx.Response) -> tuple[str, str] | None:
    """(reason, message) for an answer whose status is not 200, else ``None``."""
    code = resp.status_code
    if code == 429 or code >= 500:
        return "server_error", f"HTTP {code}: {resp.text[:200]}"
    if code >= 400:
        return "rejected", f"HTTP {code}: {resp.text[:200]}"
    if code != 200:
        return "bad_response", f"HTTP {code}"
    return None
