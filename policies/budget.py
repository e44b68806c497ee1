"""Learning capacity from the objective itself: observed SLO attainment against the target.

The capacity model (profile, learned lengths, latency corrections) can still be pessimistic or
optimistic for a real workload: burstier than Poisson, routing imbalance, lengths the profile did
not see. The error budget says which, and scales capacity — an asymmetric integral controller on
the SLO, aiming at the target's midpoint (0.9925 for a 0.99 target):

* back off by ``DOWN`` when the attainment averaged with a half-life of ``HALF_LIFE_S`` is below
  the aim *and* the current window misses it too (so it does not wind up on old misses once the
  trouble is over);
* lean in by ``UP`` when the averaged attainment meets the aim
  and the pool ran busy enough for its windows to say something about capacity; below the
  profile's own estimate (scale < 1) it recovers whenever the budget allows, busy or not;
* forgive a back-off (scale < 1 → 1) when the profile's own capacity falls by more than
  ``SHIFT`` in one tick: the demand's shape changed (longer prompts, say), the misses of the
  transition were the old shape's capacity meeting the new demand, and the profile now prices
  that in — keeping the back-off as well would count the shift twice.

Example: 3,000 requests with 9 misses (0.997) at 60 % of estimated capacity → scale × 1.01 this
tick; a window with 12 misses in 1,000 (0.988) → scale × 0.95. After five such windows the scale
is 0.77; if the profile then answers 16.5 req/s per replica where it answered 33 (mean prompt
318 → 808 tokens on `hetero-llama8b`), the scale returns to 1 and capacity is 16.5, not 12.7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from policies.types import BudgetState, PoolSnapshot, SLOTarget

HALF_LIFE_S = 600.0
UP = 0.01
DOWN = 0.05
MIN_SCALE, MAX_SCALE = 0.5, 2.0
MIN_FINISHED = 200.0  # weighted requests needed before the budget leans in
MIN_WINDOW = 50  # requests a single window needs before it can make the budget back off
SHIFT = 0.25  # a drop of the profile's capacity in one tick that forgives a back-off
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
    capacity: float,
) -> BudgetState:
    """Fold this tick's window into the budget and move the scale (idempotent per ``now``).

    ``capacity`` is what the profile answers this tick (per replica, summed over the model's
    first-hop pools), unscaled; it is kept to see the next tick's shift."""
    if now <= prev.last_t:
        return prev
    scale = prev.scale
    if scale < 1.0 and capacity < (1.0 - SHIFT) * prev.capacity:
        scale = 1.0
    seen = observed(pools)
    if seen is None:
        return BudgetState(scale, prev.finished, prev.misses, now, capacity)
    finished, misses = seen
    decay = math.exp(-math.log(2) * tick_s / HALF_LIFE_S)
    # windows overlap across ticks; weight each by the share of it that is new
    share = min(1.0, tick_s / max(tick_s, _window(pools)))
    f = prev.finished * decay + finished * share
    m = prev.misses * decay + misses * share
    aim = slo.attainment + 0.25 * (1.0 - slo.attainment)
    spending_now = finished >= MIN_WINDOW and 1.0 - misses / finished < aim
    if f >= MIN_FINISHED and 1.0 - m / f < aim and spending_now:
        scale *= 1.0 - DOWN  # behind on the budget and still spending it: back off
    elif f >= MIN_FINISHED and 1.0 - m / f >= aim:
        if utilization >= BUSY:
            scale *= 1.0 + UP
        elif scale < 1.0:
            scale = min(1.0, scale * (1.0 + UP))  # back towards the profile, busy or not
    return BudgetState(min(MAX_SCALE, max(MIN_SCALE, scale)), f, m, now, capacity)


def _window(pools: Sequence[PoolSnapshot]) -> float:
    return max((p.load.window_s for p in pools if p.load is not None), default=0.0)
