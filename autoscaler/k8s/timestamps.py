"""Kubernetes timestamps (RFC 3339, UTC) from the injected clock's seconds.

``metav1.Time`` has second precision (``2027-01-15T08:00:00Z``); ``metav1.MicroTime`` (Lease
renew times, Events) has microseconds. Both are formatted from a float the caller got from its
``Clock`` — nothing here reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(t: float, micro: bool = False) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
