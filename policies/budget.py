"""Learning capacity from the objective itself: observed SLO attainment against the target.

The capacity model (profile, learned lengths, latency corrections) can still be pessimistic or
optimistic for a real workload: burstier than Poisson, routing imbalance, lengths the profile did
not see. The error budget says which. Misses and finished requests are averaged with a half-life
of ``HALF_LIFE_S``; when the observed attainment is above the target's midpoint and the pool ran
near its estimated capacity (so the windows are informative), capacity is scaled up by
``UP`` per tick (back up to the profile's own estimate it recovers whenever the budget allows, busy
or not); when below, down by ``DOWN`` — an integral controller on the SLO, asymmetric so
that it backs off faster than it leans in.

Example: target 0.99 → the controller aims at 0.9925. 3,000 requests with 9 misses (0.997) at
60 % of estimated capacity → scale × 1.01 this tick; 12 misses in 1,000 (0.988) → scale × 0.95.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from policies.types import BudgetState, PoolSnapshot, SLOTarget

HALF_LIFE_S = 600.0
UP = 0.01
DOWN = 0.05
MIN_SCALE, MAX_SCALE = 0.5, 2.0
MIN_FINISHED = 200.0  # weighted requests needed before the budget teaches anything
BUSY = 0.5  # leaning in only from windows where load reached this share of capacity


def observed(pools: Sequence[PoolSnapshot]) -> tuple[int, float] | None:
    """(finished, misses) of a model this window, or ``None`` when the windows lack them.

    TTFT is judged where the first token is made (aggregated, EP and prefill pools), TPOT where
    the answer is decoded (aggregated, EP and decode pools); a request missing both counts twice,
    so misses are an upper bound.
    """
    finished = 0
    misses = 0.0
    for p in pools:
        w = p.load
        if w is None:
            continue
        if p.role != "decode":
            if w.ttft_misses is None:
                return None
            finished += w.finished
            misses += w.ttft_misses
        if p.role != "prefill":
            if w.tpot_misses is None:
                return None
            misses += w.tpot_misses
    return finished, misses


def update_budget(
    prev: BudgetState,
    pools: Sequence[PoolSnapshot],
    slo: SLOTarget,
    now: float,
    utilization: float,
    tick_s: float,
) -> BudgetState:
    """Fold this tick's window into the budget and move the scale (idempotent per ``now``)."""
    if now <= prev.last_t:
        return prev
    seen = observed(pools)
    if seen is None:
        return BudgetState(prev.scale, prev.finished, prev.misses, now)
    finished, misses = seen
    decay = math.exp(-math.log(2) * tick_s / HALF_LIFE_S)
    # windows overlap across ticks; weight each by the share of it that is new
    share = min(1.0, tick_s / max(tick_s, _window(pools)))
    f = prev.finished * decay + finished * share
    m = prev.misses * decay + misses * share
    scale = prev.scale
    if f >= MIN_FINISHED:
        attained = 1.0 - m / f
        aim = slo.attainment + 0.25 * (1.0 - slo.attainment)
        if attained < aim:
            scale *= 1.0 - DOWN
        elif scale < 1.0 or utilization >= BUSY:
            # back towards the profile whenever the budget allows; beyond it only from windows
            # where the pool was busy enough to say something about capacity
            scale = (
                min(scale * (1.0 + UP), max(scale, 1.0))
                if utilization < BUSY
                else scale * (1.0 + UP)
            )
    return BudgetState(min(MAX_SCALE, max(MIN_SCALE, scale)), f, m, now)


def _window(pools: Sequence[PoolSnapshot]) -> float:
    return max((p.load.window_s for p in pools if p.load is not None), default=0.0)
