"""Arrival times from a time-varying request rate, Poisson or burstier, by time rescaling.

Why it exists: every generator — constant, step, diurnal, and the ServeGen curves — is "a rate that
changes over time plus a burstiness". Expressing all of them as one :class:`RateProfile` and drawing
arrivals with one function keeps their statistics identical and testable in one place.

**Rate profile.** A piecewise-constant rate: ``rate_rps[i]`` holds on
``[edges_s[i], edges_s[i+1])``. Its cumulative ``Λ(t) = ∫₀ᵗ rate`` is piecewise linear; ``Λ(end)``
is the expected request count. Example: stages ``[(60 s, 2 rps), (30 s, 10 rps)]`` → edges
``[0, 60, 90]``, ``Λ = [0, 120, 420]``.

**Burstiness.** Inter-arrival gaps at a constant rate ``λ`` are gamma distributed with coefficient
of variation ``CV`` (std / mean of the gaps)::

    shape k = 1 / CV²,   scale θ = CV² / λ    (mean kθ = 1/λ, std √k·θ = CV/λ)

Example: ``λ = 10 rps, CV = 2`` → ``k = 0.25, θ = 0.4 s``: gaps of mean 0.1 s and std 0.2 s, i.e.
clusters of near-simultaneous requests separated by long pauses. ``CV = 1`` is the exponential
distribution (a Poisson process); ``CV = 0`` gives evenly spaced arrivals.

**Time rescaling.** For a varying rate, a renewal process with unit rate and the gaps above is
drawn in "operational time" ``u`` and mapped back through the inverse of ``Λ``: an event at ``u``
happens at ``t = Λ⁻¹(u)``. For ``CV = 1`` this is exactly an inhomogeneous Poisson process; for
other CVs the gaps inside any stretch of constant rate have the requested CV. Windows of zero rate
get no arrivals.
Example (profile above): ``u = 150`` lies in the second stage (Λ from 120 to 420 at 10 rps), so
``t = 60 + (150 − 120) / 10 = 63 s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class RateProfile:
    """A piecewise-constant request rate over ``[edges_s[0], edges_s[-1])``."""

    edges_s: FloatArray
    rate_rps: FloatArray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges_s, dtype=np.float64)
        rates = np.asarray(self.rate_rps, dtype=np.float64)
        if edges.ndim != 1 or rates.ndim != 1 or edges.size != rates.size + 1:
            raise ValueError("a rate profile needs n rates and n + 1 edges")
        if rates.size == 0:
            raise ValueError("a rate profile needs at least one window")
        if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
            raise ValueError("rate profile edges must be finite and strictly increasing")
        if not (np.all(np.isfinite(rates)) and np.all(rates >= 0)):
            raise ValueError("rates must be finite and non-negative")
        object.__setattr__(self, "edges_s", edges)
        object.__setattr__(self, "rate_rps", rates)

    @classmethod
    def constant(cls, rate_rps: float, duration_s: float) -> RateProfile:
        """One window at ``rate_rps`` for ``duration_s``."""
        return cls(np.array([0.0, duration_s]), np.array([rate_rps]))

    @classmethod
    def steps(cls, stages: Sequence[tuple[float, float]]) -> RateProfile:
        """Consecutive ``(duration_s, rate_rps)`` stages starting at 0 s."""
        if not stages:
            raise ValueError("at least one (duration_s, rate_rps) stage is needed")
        durations = np.array([d for d, _ in stages], dtype=np.float64)
        rates = np.array([r for _, r in stages], dtype=np.float64)
        if np.any(durations <= 0):
            raise ValueError("stage durations must be positive")
        return cls(np.concatenate(([0.0], np.cumsum(durations))), rates)

    @classmethod
    def sinusoid(
        cls,
        min_rps: float,
        max_rps: float,
        period_s: float,
        duration_s: float,
        *,
        phase_s: float = 0.0,
        windows_per_period: int = 1440,
    ) -> RateProfile:
        """``rate(t) = min + (max − min)·(1 − cos(2π(t + phase)/period))/2``, cell-averaged.

        The trough is at ``t = −phase`` and the peak half a period later. Each window's rate is the
        exact average of the sinusoid over it (from its integral), so ``Λ`` is exact at every edge.
        Example: ``min 2, max 10, period 3600 s``: ``rate(900 s) = 2 + 8·(1 − 0)/2 = 6 rps``.
        """
        if not 0 <= min_rps <= max_rps:
            raise ValueError("need 0 <= min_rps <= max_rps")
        if period_s <= 0 or duration_s <= 0:
            raise ValueError("period_s and duration_s must be positive")
        cells = max(1, math.ceil(duration_s / period_s * windows_per_period))
        edges = np.linspace(0.0, duration_s, cells + 1)
        omega = 2.0 * math.pi / period_s
        amplitude = (max_rps - min_rps) / 2.0

        def integral(t: FloatArray) -> FloatArray:
            return np.asarray(
                (min_rps + amplitude) * t - amplitude / omega * np.sin(omega * (t + phase_s)),
                dtype=np.float64,
            )

        cumulative = integral(edges)
        rates = np.maximum(np.diff(cumulative) / np.diff(edges), 0.0)
        return cls(edges, rates)

    @property
    def duration_s(self) -> float:
        return float(self.edges_s[-1] - self.edges_s[0])

    def cumulative(self) -> FloatArray:
        """``Λ`` at every edge, starting at 0: the expected number of arrivals up to that edge."""
        return np.concatenate(([0.0], np.cumsum(self.rate_rps * np.diff(self.edges_s))))

    @property
    def expected_requests(self) -> float:
        return float(self.cumulative()[-1])

    @property
    def mean_rps(self) -> float:
        """Time-weighted mean rate."""
        return self.expected_requests / self.duration_s

    @property
    def peak_rps(self) -> float:
        return float(self.rate_rps.max())

    def scaled(self, factor: float) -> RateProfile:
        """The same shape with every rate multiplied by ``factor``."""
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError("a rate scale factor must be finite and non-negative")
        return RateProfile(self.edges_s, self.rate_rps * factor)

    def window_index(self, times_s: FloatArray) -> npt.NDArray[np.intp]:
        """Index of the window each time falls in (times are assumed inside the profile)."""
        index = np.searchsorted(self.edges_s, times_s, side="right") - 1
        return np.clip(index, 0, self.rate_rps.size - 1)


def gamma_shape_scale(rate_rps: float, cv: float) -> tuple[float, float]:
    """Gamma ``(shape, scale)`` of inter-arrival gaps: ``(1/CV², CV²/rate)``.

    Example: ``gamma_shape_scale(10, 2) == (0.25, 0.4)``.
    """
    if rate_rps <= 0 or cv <= 0:
        raise ValueError("rate_rps and cv must be positive")
    return 1.0 / cv**2, cv**2 / rate_rps


def renewal_arrivals(
    profile: RateProfile, rng: np.random.Generator, *, cv: float = 1.0
) -> FloatArray:
    """Sorted arrival times of a gamma renewal process (gap CV ``cv``) following ``profile``'s rate.

    ``cv = 1`` is Poisson; ``cv > 1`` bursty; ``cv < 1`` more regular; ``cv = 0`` evenly spaced.
    Times are in the profile's time axis (from ``edges_s[0]``).
    """
    if not (math.isfinite(cv) and cv >= 0):
        raise ValueError("cv must be finite and non-negative")
    cumulative = profile.cumulative()
    total = float(cumulative[-1])
    if total <= 0:
        return np.empty(0, dtype=np.float64)
    events = _unit_rate_events(total, rng, cv)
    window = np.searchsorted(cumulative, events, side="right") - 1
    window = np.clip(window, 0, profile.rate_rps.size - 1)
    # Λ(edge_j) <= u < Λ(edge_j+1) implies rate_j > 0, so the division is safe.
    times = profile.edges_s[window] + (events - cumulative[window]) / profile.rate_rps[window]
    return np.asarray(np.minimum(times, profile.edges_s[-1]), dtype=np.float64)


def _unit_rate_events(total: float, rng: np.random.Generator, cv: float) -> FloatArray:
    """Event times of a unit-rate renewal process on ``[0, total)``."""
    if cv == 0:
        return np.arange(1.0, total, dtype=np.float64)
    shape, scale = 1.0 / cv**2, cv**2
    chunks: list[FloatArray] = []
    last = 0.0
    while last < total:
        remaining = total - last
        size = int(remaining + 6.0 * cv * math.sqrt(remaining) + 16)
        steps = rng.gamma(shape, scale, size) if cv != 1 else rng.exponential(1.0, size)
        events = last + np.cumsum(steps)
        chunks.append(events)
        last = float(events[-1])
    events = np.concatenate(chunks)
    return events[events < total]
