"""Demand forecast over the time a new replica needs to become ready, with an upper quantile.

Capacity added now serves only after start-up (minutes for a 70B model), so the policy sizes for
the demand expected *then*, and for an upper quantile of it, not the mean. The forecaster is
Holt's linear-trend exponential smoothing of the observed request rate, plus a quantile of the
recent observations as a guard against bursts the smoother has not caught up with:

    level' = a·x + (1 − a)·(level + trend)
    trend' = b·(level' − level) + (1 − b)·trend
    mean(h) = level' + h·trend'        (h in ticks)
    upper(h) = max(mean(h) + z_q·σ·√(1 + h·a²),  quantile_q(recent window))

Worked example: level 10 rps, trend +0.2 rps/tick, σ 1.5 rps, a = 0.3, a 120 s start-up at 15 s
ticks (h = 8), q = 0.9 (z = 1.2816): mean = 11.6, upper = 11.6 + 1.2816·1.5·√(1 + 8·0.09)
= 14.12 rps, unless the recent window's 90th percentile is higher.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from policies.types import ForecastState

ALPHA = 0.3  # level smoothing
BETA = 0.1  # trend smoothing
RECENT = 40  # observations kept for the quantile guard (10 minutes at 15 s ticks)


def update_forecast(state: ForecastState | None, observed: float, now: float) -> ForecastState:
    """Fold one observation of the demand rate into the forecaster."""
    if state is None:
        return ForecastState(
            level=observed, trend=0.0, residual_var=0.0, samples=1, last_t=now, recent=(observed,)
        )
    predicted = state.level + state.trend
    level = ALPHA * observed + (1 - ALPHA) * predicted
    trend = BETA * (level - state.level) + (1 - BETA) * state.trend
    resid = observed - predicted
    var = resid * resid if state.samples == 1 else 0.9 * state.residual_var + 0.1 * resid * resid
    recent = (*state.recent, observed)[-RECENT:]
    return ForecastState(level, trend, var, state.samples + 1, now, recent)


def _quantile(values: tuple[float, ...], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def upper_forecast(
    state: ForecastState,
    horizon_s: float,
    tick_s: float,
    quantile: float,
    quiet_s: float = math.inf,
) -> float:
    """Upper-``quantile`` demand expected ``horizon_s`` from now (never below zero).

    No demand at all once every observation of the last ``quiet_s`` (at least one tick, at most
    the guard's window) was zero: not a decaying remnant of it, nor the guard's memory of the
    traffic before. The policy passes its idleness proof (``idle_before_zero_s``), so a pool
    proven idle for 300 s is not held for the guard's 10 minutes. Example: 15 s ticks and
    ``quiet_s`` 300 → 20 zero observations in a row forecast 0 whatever came before them."""
    quiet = RECENT if quiet_s >= RECENT * tick_s else max(1, math.ceil(quiet_s / tick_s - 1e-9))
    tail = state.recent[-quiet:]
    if tail and max(tail) <= 0.0:
        return 0.0
    h = max(0.0, horizon_s / tick_s)
    mean = state.level + h * state.trend
    z = NormalDist().inv_cdf(quantile)
    sigma = math.sqrt(state.residual_var) * math.sqrt(1.0 + h * ALPHA * ALPHA)
    upper = mean + z * sigma
    if state.recent:
        upper = max(upper, _quantile(state.recent, quantile))
    return max(0.0, upper)
