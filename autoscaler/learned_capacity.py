"""Capacity learned online from the pools' own windows, with the profile as the fallback.

Why this module exists: the control loop should not depend on a profile of the hardware for
ever. Every tick it sees, per pool, the load the pods carried over the metrics window and the
latency they delivered — the rows the predictor's window models (:mod:`predictor.window_models`)
learn from in a cluster. :class:`LearnedCapacityModel` collects those rows per (model,
accelerator, role), fits the window models on a cadence, and lets them answer ``capacity`` where
their answer is evidence; :class:`~autoscaler.capacity.ProfileCapacityModel` answers everywhere
else (and always answers ``predict``).

**Rows.** One per ready pool per tick, from its :class:`~policies.types.LoadWindow`, per pod:
request, prompt-token and generation-token rates divided by the ready pods, mean ISL/OSL, KV
usage (already a mean over pods), running and waiting divided by the ready pods, and the
prefix-hit ratio (0 when nothing was looked up, as the Prometheus dataset reads it). A window
with fewer than ``MIN_FINISHED`` finished requests is skipped: its tail quantile is a handful of
requests. Windows overlap (60 s windows every 15 s tick), so ``MIN_ROWS`` = 60 rows are 15 minutes
of one pool — 15 disjoint windows.

**Targets: the window's quantile at the attainment target, not its p90.** The objective is
attainment: at least 0.99 of the requests must meet TTFT ≤ x *and* TPOT ≤ y. A window p90 inside
the SLO allows 10 % of the window's requests to miss it, ten times the budget. So the rows' targets
are the window's TTFT and per-request TPOT (``vllm:request_time_per_output_token``, what the SLO
judges; not the per-step ITL) at the quantile equal to the target —
:attr:`~policies.types.LoadWindow.ttft_at_target_s`/``tpot_at_target_s``, p99 for 0.99 — and the
capacity is the largest per-pod rate at which the model's median window p99 TTFT and p99 TPOT are
both inside the SLO. Example: a window of 330 requests on 2 pods (2.75 req/s per pod) with 4 over
the 1 s TTFT (1.2 %) has its p99 TTFT above 1 s: that load broke the objective. With 9 over (2.7 %)
its p90 would still be far inside it. Two differences from the profile remain: each objective gets
the whole 1 % (a window missing 1 % on TTFT and 1 % on other requests' TPOT reads as meeting both;
misses mostly coincide on a loaded pod, and the error budget (:mod:`policies.budget`) corrects the
rest), and no idle floor is subtracted (the profile lets load add 1 % of misses *on top of* those
that miss even on an idle replica; a window cannot tell the two apart).

**When the learned model answers.** Per (model, accelerator, role) the window models are fitted
every ``RETRAIN_EVERY_S`` (600 s) of simulated time once ``MIN_ROWS`` rows exist (the first tick
with enough rows, then every 600 s after the last attempt, whatever the outcome), on the newest
``MAX_ROWS`` rows; a fit that fails the predictor's checks leaves the last good one in place. The
learned answer replaces the fallback's only when :func:`predictor.window_models.capacity_at_slo`
is bounded by TTFT or ITL *inside* the trained per-pod rates: trees do not extrapolate, so
``observed_range`` (the SLO still holds at the highest rate seen) says only "at least that" — the
fallback answers — and a bound at or below the lowest rate seen says "even the least load seen
misses", which is the idle floor of long prompts more replicas cannot help — the fallback answers.
Inside the trained *rates* is not inside the trained *data*: a mix (ISL, OSL) never seen at high
load puts the query where the trees only extrapolate. So a bound must also be witnessed: at least
``MIN_WITNESSES`` (3) training windows with mean ISL and OSL within ±25 % of the query's, at a
per-pod rate of at least 0.9 × the bound, missed the objective (:func:`witnesses`). Example:
trained on per-pod rates 0.8–2.6 req/s at ISL ≈ 1,000, OSL ≈ 200; the median window p99 TTFT
crosses 1 s at 2.1 req/s and 5 windows at ≥ 1.89 req/s broke it → capacity 2.1, source
``learned``; if it is still 0.9 s at 2.6 (``observed_range``), or only 2 such windows missed, or
the mix is now ISL 2,000 → the profile's answer, source ``profile``/``profile-corrected``.

*Replace, not ``min(fallback, learned)``:* a bounded answer is a measurement of this workload on
this hardware at loads the pods actually carried, where the profile is a Poisson replay; a minimum
would let the learned model only ever lower capacity, so it could fix an optimistic profile but
never a pessimistic one. The error budget still scales whichever answers.

Mixes are put on a grid before the window models are asked (ISL and OSL to two significant
digits, the prefix-hit ratio to 0.05) and answers are cached per fit: ISL 1,024, OSL 187, hit 0.23
→ 1,000, 190, 0.25. Expert-parallel pools always get the fallback's answer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from autoscaler.logging import get_logger
from autoscaler.loop import OnlineCapacityModel
from autoscaler.predictor_capacity import on_grid
from policies.types import Capacity, DemandMix, PoolSnapshot, SLOTarget
from predictor.outcomes import NotReady
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WINDOW_FEATURES, WindowField
from predictor.window_models import (
    CapacityBound,
    WindowLatencyModel,
    WindowModelConfig,
    WindowSegment,
    capacity_at_slo,
    fit_window_model,
)

RETRAIN_EVERY_S: Final = 600.0  # simulated seconds between fits of one segment
MIN_ROWS: Final = 60  # rows a segment needs before its first fit (15 min at a 15 s tick)
MIN_LOAD_LEVELS: Final = 10  # distinct per-pod request rates among them
MIN_FINISHED: Final = 100  # finished requests a window needs to make a row
MAX_ROWS: Final = 4000  # newest rows a segment keeps (about 17 h of one pool at 15 s)
MIN_WITNESSES: Final = 3  # windows near the mix that broke the SLO near a learned bound
NEAR_MIX: Final = 0.25  # "near the mix": mean ISL and OSL within ±25 % of the query's
NEAR_BOUND: Final = 0.9  # "near the bound": a per-pod rate of at least 0.9 × the bound

SegmentKey = tuple[str, str, str]
"""(model, accelerator, role): pods whose windows are rows of one fit."""

_F = WindowField


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One pool's window as a per-pod row (features in ``WINDOW_FEATURES`` order, seconds)."""

    features: tuple[float, ...]
    ttft_s: float
    tpot_s: float


def window_row(pool: PoolSnapshot) -> WindowRow | None:
    """The per-pod row of ``pool``'s window, or ``None`` when it teaches nothing: no window, no
    ready pod, fewer than ``MIN_FINISHED`` finished requests, or a length or a target quantile
    missing. Example: 4 ready pods, 10 req/s, 40 running → 2.5 req/s and 10 running per pod."""
    load = pool.load
    if load is None or pool.ready <= 0 or load.finished < MIN_FINISHED:
        return None
    ttft, tpot = load.ttft_at_target_s, load.tpot_at_target_s
    isl, osl = load.mean_input_tokens, load.mean_output_tokens
    if ttft is None or tpot is None or isl is None or osl is None:
        return None
    if not (math.isfinite(ttft) and math.isfinite(tpot)) or load.request_rps <= 0:
        return None
    n = float(pool.ready)
    values = {
        _F.REQUEST_RATE: load.request_rps / n,
        _F.PROMPT_TOKENS_RATE: load.prompt_tokens_rps / n,
        _F.GENERATION_TOKENS_RATE: load.generation_tokens_rps / n,
        _F.MEAN_INPUT_TOKENS: isl,
        _F.MEAN_OUTPUT_TOKENS: osl,
        _F.KV_CACHE_USAGE: load.kv_usage,
        _F.NUM_REQUESTS_RUNNING: load.running / n,
        _F.NUM_REQUESTS_WAITING: load.waiting / n,
        _F.PREFIX_CACHE_HIT_RATIO: load.prefix_hit_ratio or 0.0,
    }
    return WindowRow(tuple(values[f] for f in WINDOW_FEATURES), ttft, tpot)


def witnesses(
    data: WindowDataset, role: str, isl: float, osl: float, slo: SLOTarget, bound_rps: float
) -> int:
    """Rows of ``data`` that witness a learned bound: mean ISL and OSL within ``NEAR_MIX`` of
    the query's, a per-pod rate of at least ``NEAR_BOUND`` × the bound, and a target over the
    objective (TTFT except on decode pools, TPOT except on prefill pools). Example: bound 2.1
    req/s at ISL 1,000 / OSL 200 → windows at ≥ 1.89 req/s with ISL 750–1,250 and OSL 150–250
    whose p99 TTFT or TPOT missed."""
    near = (np.abs(data.feature(_F.MEAN_INPUT_TOKENS) / isl - 1.0) <= NEAR_MIX) & (
        np.abs(data.feature(_F.MEAN_OUTPUT_TOKENS) / osl - 1.0) <= NEAR_MIX
    )
    near &= data.feature(_F.REQUEST_RATE) >= NEAR_BOUND * bound_rps
    broke = np.zeros(len(data), dtype=np.bool_)
    if role != "decode":
        broke |= data.ttft_s > slo.ttft_s
    if role != "prefill":
        broke |= data.itl_s > slo.tpot_s
    return int(np.count_nonzero(near & broke))


def grid_mix(mix: DemandMix) -> tuple[float, float, float]:
    """(ISL, OSL, prefix-hit) on the predictor service's query grid (:func:`on_grid`), ISL at
    least 1. Example: 1,024, 187, 0.23 → 1,000, 190, 0.25."""
    g = on_grid(mix)
    return max(g.input_tokens, 1.0), g.output_tokens, g.prefix_hit_ratio


@dataclass(frozen=True, slots=True)
class FitRecord:
    """One fit attempt: when, of what, on how many rows, and what came of it."""

    t: float
    key: SegmentKey
    rows: int
    ready: bool
    detail: str  # the trained rate range, or why the fit is not ready


@dataclass(frozen=True, slots=True)
class _Fitted:
    t: float
    model: WindowLatencyModel
    segment: WindowSegment
    data: WindowDataset  # the rows it was fitted on: the evidence a bound is checked against


@dataclass
class LearnedCapacityModel:
    """``policies.types.CapacityModel`` from online window models, ``fallback`` meanwhile."""

    fallback: OnlineCapacityModel
    quantile: float = 0.99  # the attainment target the rows' targets are quantiles at
    retrain_every_s: float = RETRAIN_EVERY_S
    config: WindowModelConfig = field(
        default_factory=lambda: WindowModelConfig(
            min_rows=MIN_ROWS, min_load_levels=MIN_LOAD_LEVELS
        )
    )
    window_s: float = 60.0
    fits: list[FitRecord] = field(default_factory=list)
    log: Any = field(default_factory=lambda: get_logger("sloscaler.learned_capacity"))
    _rows: dict[SegmentKey, deque[tuple[str, float, WindowRow]]] = field(default_factory=dict)
    _attempted: dict[SegmentKey, float] = field(default_factory=dict)
    _fitted: dict[SegmentKey, _Fitted] = field(default_factory=dict)
    _answers: dict[tuple[object, ...], float | None] = field(default_factory=dict)

    @staticmethod
    def key(pool: PoolSnapshot) -> SegmentKey:
        return (pool.model, pool.accelerator, pool.role)

    def rows(self, key: SegmentKey) -> int:
        """Rows collected for ``key`` (at most ``MAX_ROWS``)."""
        return len(self._rows.get(key, ()))

    def ready(self, key: SegmentKey) -> bool:
        """Whether a fit of ``key`` passed the predictor's checks."""
        return key in self._fitted

    # ------------------------------------------------------------------ learning

    def observe(self, pool: PoolSnapshot, mix: DemandMix, now: float) -> None:
        """Feed the fallback, append the pool's row, and fit its segment when due."""
        self.fallback.observe(pool, mix, now)
        row = window_row(pool)
        if row is None:
            return
        key = self.key(pool)
        self._rows.setdefault(key, deque(maxlen=MAX_ROWS)).append((pool.name, now, row))
        last = self._attempted.get(key)
        due = last is None or now - last >= self.retrain_every_s
        if due and self.rows(key) >= self.config.min_rows:
            self._fit(key, now)

    def observe_requests(self, model: str, requests: Iterable[tuple[int, int]], now: float) -> None:
        self.fallback.observe_requests(model, requests, now)

    def dataset(self, key: SegmentKey) -> WindowDataset:
        """The rows of ``key`` as the predictor's window dataset."""
        rows = list(self._rows.get(key, ()))
        _model, accelerator, role = key
        n = len(rows)
        columns = np.array([r.features for _, _, r in rows], dtype=np.float64).reshape(n, -1)
        return WindowDataset(
            pod=tuple(pool for pool, _, _ in rows),
            accelerator=(accelerator,) * n,
            role=(role,) * n,
            window_end_s=np.array([t for _, t, _ in rows], dtype=np.float64),
            features={f.value: columns[:, i].copy() for i, f in enumerate(WINDOW_FEATURES)},
            ttft_s=np.array([r.ttft_s for _, _, r in rows], dtype=np.float64),
            itl_s=np.array([r.tpot_s for _, _, r in rows], dtype=np.float64),
            window_s=self.window_s,
            quantile=self.quantile,
        )

    def _fit(self, key: SegmentKey, now: float) -> None:
        self._attempted[key] = now
        dataset = self.dataset(key)
        model = fit_window_model(dataset, self.config)
        found = model.segment(key[1], key[2])
        if isinstance(found, WindowSegment):
            self._fitted[key] = _Fitted(now, model, found, dataset)
            self._answers.clear()
            lo, hi = found.rate_range
            record = FitRecord(now, key, len(dataset), True, f"per-pod rates {lo:.3g}–{hi:.3g}")
        else:
            record = FitRecord(now, key, len(dataset), False, found.message)
        self.fits.append(record)
        self.log.info(
            "window_model",
            t=round(now, 3),
            model=key[0],
            accelerator=key[1],
            role=key[2],
            rows=record.rows,
            ready=record.ready,
            serving=key in self._fitted,
            detail=record.detail,
        )

    # ------------------------------------------------------------------ answering

    def learned_rps(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> float | None:
        """The window models' capacity when it is bounded inside the trained rates, else
        ``None`` (see the module doc)."""
        key = self.key(pool)
        fitted = self._fitted.get(key)
        if fitted is None or pool.role == "expert-parallel":
            return None
        isl, osl, hit = grid_mix(mix)
        if pool.role == "decode":
            hit = 0.0  # decode pods receive the prompt's KV: they look nothing up
        ask = (key, fitted.t, isl, osl, hit, slo.ttft_s, slo.tpot_s)
        if ask in self._answers:
            return self._answers[ask]
        answer = capacity_at_slo(
            fitted.model,
            isl,
            osl,
            hit,
            math.inf if pool.role == "decode" else slo.ttft_s,
            math.inf if pool.role == "prefill" else slo.tpot_s,
            accelerator=pool.accelerator,
            role=pool.role,
            rel_tolerance=0.01,
        )
        rps: float | None = None
        if (
            not isinstance(answer, NotReady)
            and answer.limited_by is not CapacityBound.OBSERVED_RANGE
            and answer.rate_rps > fitted.segment.rate_range[0]
            and witnesses(fitted.data, pool.role, isl, osl, slo, answer.rate_rps) >= MIN_WITNESSES
        ):
            rps = answer.rate_rps
        self._answers[ask] = rps
        return rps

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        fallback = self.fallback.capacity(pool, mix, slo)
        rps = self.learned_rps(pool, mix, slo)
        if rps is None:
            return fallback
        ttft, tpot = self.fallback.predict(pool, mix, rps)
        return Capacity(rps, ttft, tpot, "learned")

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        """The fallback's p90s: the window models know window p99s, not per-request p90s."""
        return self.fallback.predict(pool, mix, rps_per_replica)
