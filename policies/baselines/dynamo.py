"""NVIDIA Dynamo's SLA planner, throughput-based mode: the ``dynamo-throughput`` baseline.

Why it matters as a baseline: it is the closest published relative of sloscaler — it sizes
prefill and decode from offline profiles against TTFT/ITL objectives and corrects the profiles
with what it observes. What it lacks is what the benchmark measures: a 180 s cadence, a point
forecast, means instead of quantiles, and one engine configuration per deployment.

Every ``interval_s`` (180 s) the planner reads the interval's request count ``N``, mean ISL and
OSL, mean TTFT and ITL, then (constant predictor: the next interval repeats this one):

- correction factors ``cf_p = observed TTFT / profiled TTFT(ISL)`` and
  ``cf_d = observed ITL / profiled ITL(concurrency, ISL + OSL/2)``, with the per-decode-engine
  concurrency ``N / decode engines · mean request duration / interval``;
- ``prefill = ceil(N·ISL/Δt · min(1, cf_p) / thpt_prefill_per_gpu(ISL) / gpus_per_prefill)``;
- ``decode = ceil(N·OSL/Δt / thpt_decode_per_gpu(ITL_slo / cf_d, ISL + OSL/2) /
  gpus_per_decode)``, the throughput being the best the profile reaches at that context while
  its ITL stays under the corrected objective;
- at least ``min_endpoint`` (1) of each; over a GPU budget both shrink proportionally.

Worked example (decode side): N = 3,600 requests in 180 s, OSL 250 → 5,000 output tokens/s;
at ISL + OSL/2 = 1,125 the profile's best throughput under ITL 50 ms (cf_d = 1) is 2,600
tokens/s/GPU on a 1-GPU engine → ``ceil(5,000 / 2,600) = 2`` decode engines.

Aggregated engines (no P/D split) carry both loads; the planner here sizes them as
``ceil(prefill need + decode need)`` in fractional engines, both from the same engine's profiles
(time-sharing: an engine busy prefilling 40 % of the time has 60 % left to decode) — an
adaptation, written down in ``docs/bench.md``. An interval without requests makes no
adjustment (upstream skips NaN metrics, which is also why it does not scale down when idle).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear through ``(xs, ys)`` (``xs`` ascending), clamped at both ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True)
class PrefillProfile:
    """Offline prefill profile of one engine: single-request TTFT and prompt tokens/s per GPU,
    by input length (ascending)."""

    isl: tuple[float, ...]
    ttft_s: tuple[float, ...]
    thpt_per_gpu: tuple[float, ...]

    def ttft(self, isl: float) -> float:
        return _interp(isl, self.isl, self.ttft_s)

    def throughput_per_gpu(self, isl: float) -> float:
        return _interp(isl, self.isl, self.thpt_per_gpu)


@dataclass(frozen=True, slots=True)
class DecodeRow:
    """Decode profile at one context length: ITL and output tokens/s per GPU by concurrency."""

    context: float
    concurrency: tuple[float, ...]
    itl_s: tuple[float, ...]
    thpt_per_gpu: tuple[float, ...]

    def itl(self, concurrency: float) -> float:
        return _interp(concurrency, self.concurrency, self.itl_s)

    def best_throughput(self, itl_s: float) -> float:
        """Highest throughput with ITL ≤ ``itl_s`` (linear between grid points); the lowest
        concurrency's throughput when even that misses."""
        if itl_s <= self.itl_s[0]:
            return self.thpt_per_gpu[0]
        if itl_s >= self.itl_s[-1]:
            return self.thpt_per_gpu[-1]
        c = _interp(itl_s, self.itl_s, self.concurrency)
        return _interp(c, self.concurrency, self.thpt_per_gpu)


@dataclass(frozen=True, slots=True)
class DecodeProfile:
    """Decode rows by ascending context; values between rows interpolate linearly."""

    rows: tuple[DecodeRow, ...]

    def _blend(self, context: float) -> tuple[DecodeRow, DecodeRow, float]:
        ctx = [r.context for r in self.rows]
        if context <= ctx[0]:
            return self.rows[0], self.rows[0], 0.0
        if context >= ctx[-1]:
            return self.rows[-1], self.rows[-1], 0.0
        i = bisect.bisect_right(ctx, context)
        lo, hi = self.rows[i - 1], self.rows[i]
        return lo, hi, (context - lo.context) / (hi.context - lo.context)

    def itl(self, concurrency: float, context: float) -> float:
        lo, hi, w = self._blend(context)
        return (1 - w) * lo.itl(concurrency) + w * hi.itl(concurrency)

    def best_throughput_per_gpu(self, itl_s: float, context: float) -> float:
        lo, hi, w = self._blend(context)
        return (1 - w) * lo.best_throughput(itl_s) + w * hi.best_throughput(itl_s)


@dataclass(frozen=True, slots=True)
class DynamoConfig:
    """Planner arguments (defaults = Dynamo's)."""

    ttft_s: float
    itl_s: float
    interval_s: float = 180.0  # --adjustment-interval
    prefill_gpus: int = 1  # --prefill-engine-num-gpu
    decode_gpus: int = 1  # --decode-engine-num-gpu
    min_endpoint: int = 1
    max_gpu_budget: int | None = None


@dataclass(frozen=True, slots=True)
class IntervalMetrics:
    """What the planner reads from the frontend's metrics for the last interval."""

    num_req: float
    isl: float
    osl: float
    ttft_s: float  # mean
    itl_s: float  # mean (token-weighted)
    request_duration_s: float  # mean end-to-end latency


@dataclass(frozen=True, slots=True)
class DynamoState:
    p_correction: float = 1.0
    d_correction: float = 1.0
    last: IntervalMetrics | None = None  # the constant predictor's memory


@dataclass(frozen=True, slots=True)
class DynamoPlan:
    prefill: int
    decode: int
    predicted: IntervalMetrics
    p_correction: float
    d_correction: float


def _usable(m: IntervalMetrics | None) -> bool:
    if m is None or not m.num_req > 0:
        return False
    vals = (m.isl, m.osl, m.ttft_s, m.itl_s, m.request_duration_s)
    return all(math.isfinite(v) and v > 0 for v in vals)


def update_corrections(
    m: IntervalMetrics,
    decode_engines: int,
    prefill: PrefillProfile,
    decode: DecodeProfile,
    cfg: DynamoConfig,
    state: DynamoState,
) -> DynamoState:
    """Observed over profiled latency: ``cf_p`` from TTFT at the ISL, ``cf_d`` from ITL at the
    observed per-engine concurrency and context ``ISL + OSL/2``."""
    p_cf = state.p_correction
    expected_ttft = prefill.ttft(m.isl)
    if expected_ttft > 0:
        p_cf = m.ttft_s / expected_ttft
    d_cf = state.d_correction
    if decode_engines > 0:
        concurrency = m.num_req / decode_engines * m.request_duration_s / cfg.interval_s
        expected_itl = decode.itl(concurrency, m.isl + m.osl / 2)
        if expected_itl > 0:
            d_cf = m.itl_s / expected_itl
    return replace(state, p_correction=p_cf, d_correction=d_cf, last=m)


def engine_needs(
    m: IntervalMetrics | None,
    decode_engines: int,
    prefill: PrefillProfile,
    decode: DecodeProfile,
    cfg: DynamoConfig,
    state: DynamoState,
) -> tuple[tuple[float, float] | None, DynamoState]:
    """Fractional prefill and decode engines the next interval needs (before ``ceil``), or
    ``None`` when the last interval had no usable metrics."""
    if not _usable(m):
        return None, state
    assert m is not None
    state = update_corrections(m, decode_engines, prefill, decode, cfg, state)
    nxt = state.last  # constant predictor
    assert nxt is not None
    dt = cfg.interval_s
    prefill_tps = nxt.num_req * nxt.isl / dt * min(1.0, state.p_correction)
    p_need = prefill_tps / prefill.throughput_per_gpu(nxt.isl) / cfg.prefill_gpus
    corrected_itl = cfg.itl_s / state.d_correction if state.d_correction > 0 else cfg.itl_s
    decode_thpt = decode.best_throughput_per_gpu(corrected_itl, nxt.isl + nxt.osl / 2)
    d_need = nxt.num_req * nxt.osl / dt / decode_thpt / cfg.decode_gpus
    return (p_need, d_need), state


def plan(
    m: IntervalMetrics | None,
    decode_engines: int,
    prefill: PrefillProfile,
    decode: DecodeProfile,
    cfg: DynamoConfig,
    state: DynamoState,
) -> tuple[DynamoPlan | None, DynamoState]:
    """One adjustment of a P/D deployment: prefill and decode engine counts, or ``None`` (no
    change) when the last interval had no usable metrics."""
    needs, state = engine_needs(m, decode_engines, prefill, decode, cfg, state)
    if needs is None or state.last is None:
        return None, state
    n_p = max(math.ceil(needs[0]), cfg.min_endpoint)
    n_d = max(math.ceil(needs[1]), cfg.min_endpoint)
    budget = cfg.max_gpu_budget
    total = n_p * cfg.prefill_gpus + n_d * cfg.decode_gpus
    if budget is not None and total > budget:
        scale = budget / total
        n_p = max(cfg.min_endpoint, round(n_p * scale))
        n_d = max(cfg.min_endpoint, round((budget - n_p * cfg.prefill_gpus) / cfg.decode_gpus))
    return DynamoPlan(n_p, n_d, state.last, state.p_correction, state.d_correction), state


def plan_aggregated(
    m: IntervalMetrics | None,
    engines: int,
    prefill: PrefillProfile,
    decode: DecodeProfile,
    cfg: DynamoConfig,
    state: DynamoState,
) -> tuple[int | None, DynamoState]:
    """Aggregated engines: ``ceil(prefill need + decode need)``, both measured on the same
    engine's profiles (``cfg.prefill_gpus`` = ``cfg.decode_gpus`` = GPUs per engine): an engine
    that prefills 40 % of the time has 60 % left to decode."""
    needs, state = engine_needs(m, engines, prefill, decode, cfg, state)
    if needs is None:
        return None, state
    n = max(cfg.min_endpoint, math.ceil(needs[0] + needs[1] - 1e-9))
    if cfg.max_gpu_budget is not None:
        n = max(cfg.min_endpoint, min(n, cfg.max_gpu_budget // cfg.decode_gpus))
    return n, state
