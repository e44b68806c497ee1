"""Where the controller's observations come from: the metrics-source protocol and its
in-memory implementation over the simulator's pods.

A source answers, per tick, one :class:`~policies.types.LoadWindow` per pool (or ``None`` when
the pool has no usable data) and, per model, the demand offered at the gateway. Counters are
turned into rates the way PromQL's ``increase`` does, histograms into window quantiles the way
``histogram_quantile`` does, so the simulator's source and the Prometheus one (which asks
Prometheus exactly that) agree.

Offered demand = requests scheduled + requests rejected + growth of the gateway's queue, over the
window. Example: 600 scheduled, 5 shed and the queue grew 10 → 12 over 60 s → 607 / 60 ≈ 10.1 rps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

from policies.types import LoadWindow
from simulator.control import ClusterView
from simulator.metrics.histogram import HistogramSnapshot
from simulator.metrics.vllm import MetricsSnapshot


@dataclass(frozen=True, slots=True)
class Demand:
    arrival_rps: float | None
    queued: int


class MetricsSource(Protocol):
    def observe(self, view: ClusterView) -> tuple[dict[str, LoadWindow | None], dict[str, Demand]]:
        """Per-pool windows and per-model demand as of ``view.now``."""
        ...


def _merge(hists: list[HistogramSnapshot]) -> HistogramSnapshot | None:
    if not hists:
        return None
    counts = [0] * len(hists[0].counts)
    total = 0.0
    for h in hists:
        for i, c in enumerate(h.counts):
            counts[i] += c
        total += h.sum
    return HistogramSnapshot(hists[0].bounds, tuple(counts), total)


def _quantile(h: HistogramSnapshot | None, q: float) -> float | None:
    if h is None or h.count == 0:
        return None
    return h.quantile(q)


def rate_above(x: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Observations per second above ``x``, interpolating linearly inside the bucket holding it
    (what ``histogram_fraction`` assumes), from cumulative ``(le, count)`` buckets as Prometheus
    serves them — non-monotonic counts are repaired as ``histogram_quantile`` does.

    Example: ``le=0.5: 0.9, le=1.0: 1.0, le=+Inf: 1.0`` per second, x = 0.75 → below it 0.9 + half
    of the 0.1 in (0.5, 1.0] = 0.95 → 0.05 per second above (3 per 60 s window).
    """
    below = 0.0
    lower = 0.0
    cumulative = 0.0
    total = max((c for _, c in buckets), default=0.0)
    for bound, c in buckets:
        count = max(0.0, c - cumulative)  # ensureMonotonic
        cumulative = max(cumulative, c)
        if x >= bound:
            below += count
            lower = bound
            continue
        if math.isfinite(bound) and bound > lower:
            below += count * (x - lower) / (bound - lower)
        break
    return max(0.0, total - below)


def _over(h: HistogramSnapshot | None, x: float) -> float | None:
    """Observations above ``x``, interpolating linearly inside the bucket holding it (what
    ``histogram_fraction`` assumes). Example: buckets ≤0.5: 90, ≤1.0: 10 (of 100), x = 0.75 →
    5 of the 10 in (0.5, 1.0] are above → 5."""
    if h is None:
        return None
    return rate_above(x, list(zip((*h.bounds, math.inf), accumulate(h.counts), strict=True)))


def _mean(h: HistogramSnapshot | None) -> float | None:
    if h is None or h.count == 0:
        return None
    return h.mean()


@dataclass(slots=True)
class _Frame:
    t: float
    pods: dict[str, MetricsSnapshot]
    gateway: dict[str, tuple[int, int, int]]  # model → (scheduled, errors, queued)


class SimulatorMetricsSource:
    """Reads the simulated pods' and gateway's metrics in memory; keeps ``window_s`` of frames."""

    def __init__(
        self,
        window_s: float = 60.0,
        objectives: Mapping[str, tuple[float, float]] | None = None,
        attainment: Mapping[str, float] | None = None,
    ) -> None:
        self.window_s = window_s
        self.objectives = dict(objectives or {})  # model → (TTFT s, TPOT s) to count misses of
        self.attainment = dict(attainment or {})  # model → target share; quantile of the window
        self._frames: deque[_Frame] = deque()

    def observe(self, view: ClusterView) -> tuple[dict[str, LoadWindow | None], dict[str, Demand]]:
        pods = {pod.name: pod.metrics.snapshot() for pool in view.pools for pod in pool.pods}
        gw = {
            m: (g.requests_total, sum(g.request_errors.values()), g.queue_size)
            for m, g in view.gateway.items()
        }
        frame = _Frame(view.now, pods, gw)
        while self._frames and self._frames[0].t < view.now - self.window_s - 1e-9:
            self._frames.popleft()
        base = self._frames[0] if self._frames else None
        self._frames.append(frame)
        loads: dict[str, LoadWindow | None] = {}
        for pool in view.pools:
            names = [p.name for p in pool.pods]
            phases = {p.name: p.phase for p in pool.pods}
            loads[pool.name] = self._window(base, frame, names, phases, pool.model)
        demand: dict[str, Demand] = {}
        for model, (sched, errs, queued) in gw.items():
            if base is None or model not in base.gateway or view.now <= base.t:
                demand[model] = Demand(None, queued)
                continue
            ps, pe, pq = base.gateway[model]
            offered = (sched - ps) + (errs - pe) + (queued - pq)
            demand[model] = Demand(max(0.0, offered) / (view.now - base.t), queued)
        return loads, demand

    def _window(
        self,
        base: _Frame | None,
        now: _Frame,
        pods: list[str],
        phases: Mapping[str, str],
        model: str,
    ) -> LoadWindow | None:
        if base is None or now.t <= base.t:
            return None
        dt = now.t - base.t
        diffs: list[MetricsSnapshot] = []
        for name in pods:
            cur = now.pods[name]
            old = base.pods.get(name)
            diffs.append(cur.since(old) if old is not None else cur)
        finished = sum(d.finished_requests for d in diffs)
        prompt = _merge([d.request_prompt_tokens for d in diffs])
        gen = _merge([d.request_generation_tokens for d in diffs])
        queries = sum(d.prefix_cache_queries for d in diffs)
        hits = sum(d.prefix_cache_hits for d in diffs)
        ready = [
            d for name, d in zip(pods, diffs, strict=True) if phases[name] in ("ready", "draining")
        ]
        ttft_hist = _merge([d.time_to_first_token for d in diffs])
        tpot_hist = _merge([d.request_time_per_output_token for d in diffs])
        objective = self.objectives.get(model)
        ttft_miss = tpot_miss = None
        if objective is not None:
            ttft_miss = _over(ttft_hist, objective[0])
            tpot_miss = _over(tpot_hist, objective[1])
        target = self.attainment.get(model)
        return LoadWindow(
            window_s=dt,
            request_rps=finished / dt,
            prompt_tokens_rps=sum(d.prompt_tokens for d in diffs) / dt,
            generation_tokens_rps=sum(d.generation_tokens for d in diffs) / dt,
            mean_input_tokens=_mean(prompt),
            mean_output_tokens=_mean(gen),
            prefix_hit_ratio=hits / queries if queries else None,
            kv_usage=sum(d.kv_cache_usage_perc for d in ready) / len(ready) if ready else 0.0,
            running=float(sum(d.num_requests_running for d in diffs)),
            waiting=float(sum(d.num_requests_waiting for d in diffs)),
            ttft_p90_s=_quantile(ttft_hist, 0.9),
            itl_p90_s=_quantile(_merge([d.inter_token_latency for d in diffs]), 0.9),
            finished=finished,
            ttft_misses=ttft_miss,
            tpot_misses=tpot_miss,
            ttft_at_target_s=None if target is None else _quantile(ttft_hist, target),
            tpot_at_target_s=None if target is None else _quantile(tpot_hist, target),
        )
