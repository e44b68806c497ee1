"""llm-d Workload Variant Autoscaler, saturation analyzer V1 (its default mode): the
``wva-saturation`` baseline.

Why this shape: WVA sizes the variants of one model (e.g. the same model on H100 and on MI300X)
from live vLLM gauges only — no latency model, no SLO — moving one replica per 60 s cycle. The
benchmark has to show what that costs and where it misses, so the rules are the published ones:

1. Per replica reporting metrics (``max_over_time(...[1m])`` of ``vllm:kv_cache_usage_perc`` and
   ``vllm:num_requests_waiting``), it is *saturated* when ``kv ≥ 0.80`` or ``queue ≥ 5``.
2. Over the non-saturated replicas of all variants, the average spare ``0.80 − kv`` and
   ``5 − queue``; **scale up** when spare kv < 0.10 or spare queue < 3 (no non-saturated replica
   at all also means scale up: both spares read 0).
3. **Scale down** only if the load of the non-saturated replicas spread over one replica fewer
   still leaves both spares ≥ their triggers, and at least 2 replicas are non-saturated.
4. Targets per variant: start from the replicas reporting metrics when the variant is stable
   (last desired = current and every pod reports), else from current; a variant whose last
   desired differs from current keeps that desired (*preserved*). Scale up: the cheapest
   non-preserved variant with no pending pods gets +1 (ties: name, alphabetically first). Scale
   down: the most expensive non-preserved variant above 1 gets −1 (ties: alphabetically last).

Example (thresholds as above): two H100 replicas at kv 0.72 / 0.70 with queues 1 / 2 → spare kv
(0.08 + 0.10) / 2 = 0.09 < 0.10 → +1 on the cheapest variant. Three replicas at kv 0.20, 0.25,
0.15, queues 0 → after removing one: kv 0.60 / 2 = 0.30 → spare 0.50 ≥ 0.10, queue spare 5 ≥ 3 →
−1 on the most expensive variant.

Scale to zero (:func:`scale_to_zero_target`) is WVA's separate path: zero successful requests
over ``retention`` (10 min) → 0; requests waiting in the gateway's flow-control queue → 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SaturationConfig:
    """WVA's ``capacity-scaling-config`` defaults."""

    kv_threshold: float = 0.80
    queue_threshold: float = 5.0
    kv_spare_trigger: float = 0.10
    queue_spare_trigger: float = 3.0
    interval_s: float = 60.0
    retention_s: float = 600.0  # scale-to-zero after this long without a successful request


@dataclass(frozen=True, slots=True)
class ReplicaMetrics:
    """One replica's peak gauges over the last minute."""

    pod: str
    variant: str
    kv_usage: float
    queue_length: float


@dataclass(frozen=True, slots=True)
class VariantState:
    """A variant (one pool of the model) as the controller sees it."""

    name: str
    cost: float  # per replica; cheapest scales up first
    current: int  # replicas of the scale target (pods, pending ones included)
    desired: int  # WVA's last desired replicas (status); 0 when none yet
    pending: int  # pods not yet ready


@dataclass(frozen=True, slots=True)
class SaturationAnalysis:
    ready: Mapping[str, int]  # variant → replicas reporting metrics
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool


def _saturated(m: ReplicaMetrics, cfg: SaturationConfig) -> bool:
    return m.kv_usage >= cfg.kv_threshold or m.queue_length >= cfg.queue_threshold


def analyze(replicas: Sequence[ReplicaMetrics], cfg: SaturationConfig) -> SaturationAnalysis:
    """Steps 1–3 of the module docstring over every replica of one model."""
    ready: dict[str, int] = {}
    for m in replicas:
        ready[m.variant] = ready.get(m.variant, 0) + 1
    free = [m for m in replicas if not _saturated(m, cfg)]
    n = len(free)
    spare_kv = sum(cfg.kv_threshold - m.kv_usage for m in free) / n if n else 0.0
    spare_q = sum(cfg.queue_threshold - m.queue_length for m in free) / n if n else 0.0
    up = bool(replicas) and (spare_kv < cfg.kv_spare_trigger or spare_q < cfg.queue_spare_trigger)
    safe = False
    if n >= 2:
        kv_after = sum(m.kv_usage for m in free) / (n - 1)
        q_after = sum(m.queue_length for m in free) / (n - 1)
        safe = (
            cfg.kv_threshold - kv_after >= cfg.kv_spare_trigger
            and cfg.queue_threshold - q_after >= cfg.queue_spare_trigger
        )
    return SaturationAnalysis(ready, n, spare_kv, spare_q, up, safe)


def saturation_targets(
    analysis: SaturationAnalysis, variants: Sequence[VariantState]
) -> dict[str, int]:
    """Step 4: target replicas per variant. Variants without any replica reporting metrics keep
    their current count (WVA only analyses variants it has metrics for)."""
    targets = {v.name: v.current for v in variants}
    analysed = [v for v in variants if analysis.ready.get(v.name, 0) > 0]
    if not analysed:
        return targets
    preserved: set[str] = set()
    for v in analysed:
        ready = analysis.ready[v.name]
        stable = v.desired in (0, v.current)
        targets[v.name] = ready if stable and ready == v.current else v.current
        if not stable:
            targets[v.name] = v.desired
            preserved.add(v.name)
    if analysis.scale_up:
        up = [v for v in analysed if v.name not in preserved and v.pending == 0]
        if up:
            pick = min(up, key=lambda v: (v.cost, v.name))
            targets[pick.name] += 1
    elif analysis.scale_down_safe:
        down = [v for v in analysed if v.name not in preserved and targets[v.name] > 1]
        if down:
            pick = max(down, key=lambda v: (v.cost, v.name))
            targets[pick.name] -= 1
    return targets


def scale_to_zero_target(
    target: int, current: int, successes_in_retention: int | None, queued: int
) -> int:
    """WVA's scale-to-zero path for a model that enables it: 0 after ``retention`` without a
    successful request (``None`` = unknown, so not zero), 1 from zero when requests queue."""
    if current == 0:
        return 1 if queued > 0 else 0
    if successes_in_retention == 0 and queued == 0:
        return 0
    return target
