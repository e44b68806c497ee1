"""The predictor's only wall-clock read, behind a one-method protocol.

Why this module exists: model code takes ``now`` as an argument and never reads a clock; the HTTP
service needs a time for ``predicted_at``, model-load stamps and the retraining cadence, so it
takes a :class:`Clock`. Anything with ``now() -> float`` (seconds since the epoch) fits, including
the controller's own wall and virtual clocks; :class:`WallClock` is the default for ``serve``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the Unix epoch."""

    def now(self) -> float: ...


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock that reads what it is told (tests, replays)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self.t += seconds
