"""The capacity of one replica at an SLO: the largest request rate whose p90 TTFT and TPOT fit.

Why this module exists: the planner sizes pools as ``demand / capacity``, so capacity is the
number the whole loop rests on. It comes from the learned model when that model is ready, and
from an analytic queueing model of the accelerator (plain numbers, no training) when it is not,
so the planner always has an answer and knows which one it got.

**From a rate to a pod's load.** A request-level model predicts latency from a pod's state, not
from a rate, so a steady request rate ``λ`` (req/s) with prompt ``isl``, output ``osl`` and
prefix hit ``p`` is mapped to the state it produces:

* prefill takes ``t_p = isl·(1 − p)/prefill_tps`` seconds and runs one prompt at a time, an
  M/M/1 server with utilisation ``ρ = λ·t_p``; mean queue ``L_q = ρ²/(1 − ρ)``;
* decoding shares the GPU with prefill, so a decode step takes ``itl(n)/(1 − ρ)`` where
  ``itl(n) = α + β·n`` ms at batch ``n``;
* the batch follows **Little's law**, ``n = λ·W`` with ``W = t_p + osl·itl/1000`` the time a
  request spends running. Example: ``λ = 10`` req/s, ``t_p = 0.04`` s, ``osl = 200``, a 15 ms
  step → ``W = 0.04 + 200·0.015 = 3.04`` s → ``n = 30.4`` running requests;
* KV use ``= n·(isl + osl/2)/kv_capacity_tokens`` (a request holds its prompt and on average half
  its output); tokens in flight follow the same counts.

With the learned model, ``itl`` is the model's own mean TPOT at that state, found by the fixed
point ``n ← λ·(t_p + osl·TPOT(n)/1000)`` from ``n = 0`` (TPOT is monotone in load, so the
iteration rises to the smallest fixed point). With the analytic model ``itl`` is affine and
the fixed point has a closed form: ``n = λ·(t_p + osl·α'/1000)/(1 − λ·osl·β'/1000)`` with
``α' = α/(1 − ρ)``, ``β' = β/(1 − ρ)``.

**Analytic latency.** In M/M/1 the wait ``W_q`` exceeds ``t`` with probability
``ρ·e^{−(μ − λ)t}`` (``μ = 1/t_p``), so its quantile ``q`` is ``ln(ρ/(1 − q))/(μ − λ)`` (0 when
``ρ ≤ 1 − q``); ``TTFT_q = W_q,q + t_p + itl'(n) + overhead``. TPOT at ``q`` uses the batch at its
``q``-quantile, ``n + z_q·√n`` (Poisson batch, ``z_0.9 = 1.2816``).

**Bisection.** Every quantity above is non-decreasing in ``λ`` and the models are monotone in
load, so the rates that meet the SLO form an interval ``[0, λ*]`` and bisection finds ``λ*``
exactly: start from ``lo = 0`` and an ``hi`` that cannot be met (prefill saturation
``1/t_p``, or the decode bound), test the midpoint, keep the half that contains the boundary.
From ``hi = 24`` req/s, 15 halvings bring the gap below ``24/2^15 ≈ 0.0007`` req/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from predictor.features import NUMERIC_FEATURES, FeatureColumns, PodType, Target
from predictor.models import LatencyModel
from predictor.outcomes import NotReady, NotReadyReason

_Z = {0.5: 0.0, 0.9: 1.2815515655446004, 0.95: 1.6448536269514722, 0.99: 2.3263478740408408}


def _z(q: float) -> float:
    if q in _Z:
        return _Z[q]
    from scipy.stats import norm

    return float(norm.ppf(q))


@dataclass(frozen=True, slots=True)
class AcceleratorProfile:
    """One accelerator serving one model, as plain numbers (no training needed).

    ``itl_base_ms + itl_per_seq_ms·n`` is a decode step at batch ``n`` (WVA's ``α + β·n``);
    ``ttft_overhead_ms`` is the fixed part of every TTFT (API server, tokenisation, scheduling).
    """

    name: str
    prefill_tokens_per_s: float
    itl_base_ms: float
    itl_per_seq_ms: float
    kv_capacity_tokens: float
    max_num_seqs: int = 256
    ttft_overhead_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.prefill_tokens_per_s <= 0 or self.kv_capacity_tokens <= 0:
            raise ValueError("prefill_tokens_per_s and kv_capacity_tokens must be > 0")
        if self.itl_base_ms <= 0 or self.itl_per_seq_ms < 0 or self.max_num_seqs < 1:
            raise ValueError("need itl_base_ms > 0, itl_per_seq_ms ≥ 0, max_num_seqs ≥ 1")


@dataclass(frozen=True, slots=True)
class Workload:
    """The request mix: mean prompt and output tokens and the prefix-cache hit fraction."""

    isl: float
    osl: float
    prefix_hit: float = 0.0

    def __post_init__(self) -> None:
        if self.isl < 0 or self.osl < 1 or not 0.0 <= self.prefix_hit <= 1.0:
            raise ValueError("need isl ≥ 0, osl ≥ 1 and prefix_hit in [0, 1]")


class Limit(StrEnum):
    """What stops a replica from taking more load."""

    TTFT = "ttft"
    TPOT = "tpot"
    KV_CACHE = "kv_cache"
    MAX_NUM_SEQS = "max_num_seqs"
    PREFILL_SATURATION = "prefill_saturation"


class Source(StrEnum):
    """Which model produced a capacity."""

    LEARNED = "learned"
    ANALYTIC = "analytic"


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A replica's steady state at ``rate_rps`` and its predicted latency quantile (seconds)."""

    rate_rps: float
    running: float
    waiting: float
    kv_cache_percentage: float
    prefill_tokens_in_flight: float
    decode_tokens_in_flight: float
    ttft_s: float
    tpot_s: float
    violation: Limit | None


@dataclass(frozen=True, slots=True)
class CapacityEstimate:
    """The largest rate meeting the SLO, what limits it, and where the answer came from."""

    rate_rps: float
    limited_by: Limit
    source: Source
    at_capacity: OperatingPoint
    fallback_reason: NotReady | None = None
    iterations: int = 0


def _prefill(profile: AcceleratorProfile, workload: Workload, rate: float) -> tuple[float, float]:
    """Prefill time per request (s) and prefill utilisation at ``rate``."""
    t_p = workload.isl * (1.0 - workload.prefix_hit) / profile.prefill_tokens_per_s
    return t_p, rate * t_p


def _state(
    profile: AcceleratorProfile,
    workload: Workload,
    running: float,
    rho: float,
) -> tuple[float, float, float, float]:
    """(waiting, kv fraction, prefill tokens in flight, decode tokens in flight)."""
    waiting = rho * rho / (1.0 - rho)
    context = workload.isl + workload.osl / 2.0
    kv = running * context / profile.kv_capacity_tokens
    prefill_tokens = (waiting + rho) * workload.isl * (1.0 - workload.prefix_hit)
    return waiting, kv, prefill_tokens, running * context


def _structural_violation(
    profile: AcceleratorProfile, rho: float, running: float, kv: float
) -> Limit | None:
    if rho >= 1.0 or not math.isfinite(running):
        return Limit.PREFILL_SATURATION
    if running > profile.max_num_seqs:
        return Limit.MAX_NUM_SEQS
    if kv > 1.0:
        return Limit.KV_CACHE
    return None


def analytic_point(
    profile: AcceleratorProfile, workload: Workload, rate: float, quantile: float = 0.9
) -> OperatingPoint:
    """The analytic model's steady state and latency quantile at ``rate`` (module doc)."""
    t_p, rho = _prefill(profile, workload, rate)
    inf = math.inf
    if rho >= 1.0:
        return OperatingPoint(rate, inf, inf, inf, inf, inf, inf, inf, Limit.PREFILL_SATURATION)
    slow = 1.0 / (1.0 - rho)
    alpha, beta = profile.itl_base_ms * slow, profile.itl_per_seq_ms * slow
    denominator = 1.0 - rate * workload.osl * beta / 1000.0
    if denominator <= 0:
        return OperatingPoint(rate, inf, 0.0, inf, inf, inf, inf, inf, Limit.MAX_NUM_SEQS)
    running = rate * (t_p + workload.osl * alpha / 1000.0) / denominator
    waiting, kv, prefill_tokens, decode_tokens = _state(profile, workload, running, rho)
    if rho > 1.0 - quantile and t_p > 0:
        wait_q = math.log(rho / (1.0 - quantile)) / (1.0 / t_p - rate)
    else:
        wait_q = 0.0
    itl_ms = alpha + beta * running
    ttft_s = wait_q + t_p + (itl_ms + profile.ttft_overhead_ms) / 1000.0
    batch_q = running + _z(quantile) * math.sqrt(max(running, 0.0))
    tpot_s = (alpha + beta * batch_q) / 1000.0
    violation = _structural_violation(profile, rho, running, kv)
    return OperatingPoint(
        rate, running, waiting, kv, prefill_tokens, decode_tokens, ttft_s, tpot_s, violation
    )


def _features(
    workload: Workload,
    accelerator: str,
    pod_type: PodType,
    running: float,
    waiting: float,
    kv: float,
    prefill_tokens: float,
    decode_tokens: float,
) -> FeatureColumns:
    values = dict(
        zip(
            NUMERIC_FEATURES,
            (
                min(kv, 1.0),
                workload.isl,
                waiting,
                running,
                prefill_tokens,
                decode_tokens,
                workload.prefix_hit,
                workload.osl / 2.0,
            ),
            strict=True,
        )
    )
    return FeatureColumns(
        values={k: np.array([v], dtype=np.float64) for k, v in values.items()},
        pod_type=np.array([pod_type.code], dtype=np.int8),
        accelerator=(accelerator,),
    )


def learned_point(
    model: LatencyModel,
    profile: AcceleratorProfile,
    workload: Workload,
    rate: float,
    *,
    accelerator: str,
    pod_type: PodType = PodType.AGGREGATED,
    quantile: float = 0.9,
    max_iterations: int = 60,
) -> OperatingPoint:
    """The learned model's latency quantile at the steady state of ``rate`` (module doc).

    The model must be ready for (accelerator, pod_type); ``quantile`` must be one it was trained
    for.
    """
    t_p, rho = _prefill(profile, workload, rate)
    inf = math.inf
    if rho >= 1.0:
        return OperatingPoint(rate, inf, inf, inf, inf, inf, inf, inf, Limit.PREFILL_SATURATION)
    q_index = model.config.quantiles.index(quantile)
    running = 0.0
    state = _state(profile, workload, running, rho)
    for _ in range(max_iterations):
        state = _state(profile, workload, running, rho)
        cols = _features(workload, accelerator, pod_type, running, *state)
        tpot_mean_ms = float(model.predict_mean_ms(cols, Target.TPOT)[0])
        updated = rate * (t_p + workload.osl * tpot_mean_ms / 1000.0)
        converged = abs(updated - running) <= 1e-3 * max(1.0, updated)
        running = updated
        if converged or running > profile.max_num_seqs:
            break
    state = _state(profile, workload, running, rho)
    waiting, kv, prefill_tokens, decode_tokens = state
    cols = _features(workload, accelerator, pod_type, running, *state)
    ttft_ms = math.exp(float(model.predict_log_quantiles(cols, Target.TTFT)[0][0, q_index]))
    tpot_ms = math.exp(float(model.predict_log_quantiles(cols, Target.TPOT)[0][0, q_index]))
    violation = _structural_violation(profile, rho, running, kv)
    return OperatingPoint(
        rate,
        running,
        waiting,
        kv,
        prefill_tokens,
        decode_tokens,
        ttft_ms / 1000.0,
        tpot_ms / 1000.0,
        violation,
    )


def _violation(point: OperatingPoint, slo_ttft_s: float, slo_tpot_s: float) -> Limit | None:
    if point.violation is not None:
        return point.violation
    if not point.ttft_s <= slo_ttft_s:
        return Limit.TTFT
    if not point.tpot_s <= slo_tpot_s:
        return Limit.TPOT
    return None


def capacity_at_slo(
    model: LatencyModel | None,
    isl: float,
    osl: float,
    prefix_hit: float,
    slo_ttft_s: float,
    slo_tpot_s: float,
    *,
    profile: AcceleratorProfile,
    accelerator: str | None = None,
    pod_type: PodType = PodType.AGGREGATED,
    quantile: float = 0.9,
    rel_tolerance: float = 1e-3,
    max_iterations: int = 80,
) -> CapacityEstimate:
    """The largest per-replica request rate at which predicted ``quantile`` TTFT and TPOT meet
    the SLO (seconds), by bisection (module doc).

    Uses ``model`` when it is ready for (``accelerator`` — default ``profile.name`` — ,
    ``pod_type``) and trained for ``quantile``; otherwise the analytic model of ``profile``,
    with the reason in ``fallback_reason``. A rate of 0 means even a trickle misses the SLO.
    """
    workload = Workload(isl, osl, prefix_hit)
    acc = accelerator or profile.name
    fallback: NotReady | None = None
    use_model = False
    if model is not None:
        key = model.resolve(acc, pod_type)
        problem = key if isinstance(key, NotReady) else model.segment_ready(key)
        if problem is None and quantile not in model.config.quantiles:
            problem = NotReady(
                NotReadyReason.NO_MODEL,
                f"model has no {quantile} quantile (it has {model.config.quantiles})",
            )
        fallback, use_model = problem, problem is None

    def point(rate: float) -> OperatingPoint:
        if use_model:
            assert model is not None
            return learned_point(
                model,
                profile,
                workload,
                rate,
                accelerator=acc,
                pod_type=pod_type,
                quantile=quantile,
            )
        return analytic_point(profile, workload, rate, quantile)

    t_p = workload.isl * (1.0 - workload.prefix_hit) / profile.prefill_tokens_per_s
    decode_bound = (
        1000.0 / (workload.osl * profile.itl_per_seq_ms) if profile.itl_per_seq_ms else math.inf
    )
    seq_bound = profile.max_num_seqs / (t_p + workload.osl * profile.itl_base_ms / 1000.0)
    hi = min(1.0 / t_p if t_p > 0 else math.inf, decode_bound, seq_bound)
    lo = 0.0
    source = Source.LEARNED if use_model else Source.ANALYTIC
    hi_point = point(hi)
    limit = _violation(hi_point, slo_ttft_s, slo_tpot_s)
    iterations = 0
    if limit is None:  # the bound itself meets the SLO (cannot happen with a finite bound)
        return CapacityEstimate(hi, Limit.PREFILL_SATURATION, source, hi_point, fallback, 0)
    lo_point = point(hi * 1e-9)
    first = _violation(lo_point, slo_ttft_s, slo_tpot_s)
    if first is not None:
        return CapacityEstimate(0.0, first, source, lo_point, fallback, 1)
    while hi - lo > rel_tolerance * hi and iterations < max_iterations:
        iterations += 1
        mid = 0.5 * (lo + hi)
        mid_point = point(mid)
        broken = _violation(mid_point, slo_ttft_s, slo_tpot_s)
        if broken is None:
            lo, lo_point = mid, mid_point
        else:
            hi, limit = mid, broken
    return CapacityEstimate(lo, limit, source, lo_point, fallback, iterations)
