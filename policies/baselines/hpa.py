"""Kubernetes HPA (autoscaling/v2) replica arithmetic: the ``hpa-kv`` baseline, and the engine
KEDA drives above one replica.

Why it is reimplemented rather than approximated: HPA's behaviour under LLM load comes from its
details — the ±10 % tolerance, how pods without metrics count, the 300 s scale-down window that
keeps the highest recent recommendation, and the per-period rate limits. Each part follows the
upstream controller (``replica_calculator.go`` and ``horizontal.go``), as a function of explicit
frozen state and ``now``:

1. **Metric → desired** (:func:`pods_metric_replicas`, a ``Pods`` metric with an ``AverageValue``
   target, e.g. ``vllm:kv_cache_usage_perc`` through prometheus-adapter):
   ``ratio = mean(metric over pods with a sample) / target``; nothing happens while
   ``|ratio − 1| ≤ tolerance``; else ``desired = ceil(ratio · pods with a sample)``.
   Pending and terminating pods are ignored. Running pods without a sample (a vLLM pod still
   loading weights has no ``/metrics``) count as using the target on a scale-down and 0 on a
   scale-up, and the change is dropped if that flips its direction.
   Example: KV 0.95, 0.90, 0.85 on 3 pods, target 0.8 → ratio 1.125 → ``ceil(3.375) = 4``; with a
   fourth pod still loading, ratio (2.7 + 0) / (4 · 0.8) = 0.84 < 1 flips the direction → stay.
   :func:`external_average_value_replicas` is the ``External`` metric form KEDA uses:
   ``desired = ceil(total / target_per_pod)`` unless ``total / (target · replicas)`` is within
   tolerance. Example: 23 waiting requests, threshold 5, 4 replicas → ratio 1.15 → 5 replicas.
2. **Stabilization** (:func:`hpa_reconcile`): the result is the current count pulled up to the
   lowest recommendation of the scale-up window (0 s by default) and down to the highest of the
   scale-down window (300 s). Example: recommendations 6, 4, 3 in the last five minutes, current
   6 → 6 until the 6 is older than 300 s.
3. **Rate limits**: per direction, each policy proposes a limit from the replicas at the start of
   its period (current − added + removed within ``period_s``); ``Max`` selects the most permissive.
   Defaults: up ``max(+4 pods, +100 %)`` per 15 s, down ``−100 %`` per 15 s. Example: 3 replicas
   wanting 20 → ``max(3 + 4, ceil(3 · 2)) = 7`` now, then ``max(11, 14) = 14`` 15 s later.
   Then ``[min, max]``.

A target at 0 replicas is left alone (``ScalingDisabled``): HPA cannot scale from zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal


class HPAReason(StrEnum):
    """The HPA's condition reasons (``ScalingLimited`` / ``AbleToScale`` / ``ScalingActive``)."""

    DesiredWithinRange = "DesiredWithinRange"
    ScaleUpLimit = "ScaleUpLimit"
    ScaleDownLimit = "ScaleDownLimit"
    TooManyReplicas = "TooManyReplicas"
    TooFewReplicas = "TooFewReplicas"
    ScaleUpStabilized = "ScaleUpStabilized"
    ScaleDownStabilized = "ScaleDownStabilized"
    ScalingDisabled = "ScalingDisabled"
    FailedGetMetrics = "FailedGetMetrics"
    AboveMaxReplicas = "AboveMaxReplicas"
    BelowMinReplicas = "BelowMinReplicas"


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """``behavior.scaleUp/scaleDown.policies[]``: ``kind`` Pods or Percent, per ``period_s``."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """``behavior.scaleUp`` or ``behavior.scaleDown``."""

    stabilization_window_s: float
    policies: tuple[ScalingPolicy, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


DEFAULT_SCALE_UP = ScalingRules(
    0.0, (ScalingPolicy("Pods", 4, 15.0), ScalingPolicy("Percent", 100, 15.0))
)
DEFAULT_SCALE_DOWN = ScalingRules(300.0, (ScalingPolicy("Percent", 100, 15.0),))


@dataclass(frozen=True, slots=True)
class HPAConfig:
    """One HorizontalPodAutoscaler: bounds, tolerance, behaviour (defaults = Kubernetes')."""

    min_replicas: int = 1
    max_replicas: int = 10
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    sync_period_s: float = 15.0  # --horizontal-pod-autoscaler-sync-period


@dataclass(frozen=True, slots=True)
class HPAState:
    """What the controller keeps in memory per HPA: recent recommendations and scale events."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (t, unstabilized desired)
    scale_up_events: tuple[tuple[float, int], ...] = ()  # (t, replicas added)
    scale_down_events: tuple[tuple[float, int], ...] = ()  # (t, replicas removed)


PodPhase = Literal["pending", "running", "terminating"]


@dataclass(frozen=True, slots=True)
class PodMetric:
    """A pod of the scale target as HPA sees it: its phase and its metric sample, if any."""

    name: str
    phase: PodPhase
    value: float | None  # None: no sample (the pod exposes no metrics yet)


def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def pods_metric_replicas(
    current: int, pods: Sequence[PodMetric], target: float, tolerance: float = 0.1
) -> int | None:
    """Desired replicas for a ``Pods`` metric with an ``AverageValue`` target; ``None`` when no
    pod has a sample (HPA reports ``FailedGetMetrics`` and does not scale)."""
    values = [p.value for p in pods if p.phase == "running" and p.value is not None]
    missing = sum(1 for p in pods if p.phase == "running" and p.value is None)
    if not values:
        return None
    ratio = sum(values) / (target * len(values))
    if missing == 0:
        if _within(ratio, tolerance):
            return current
        return math.ceil(ratio * len(values))
    fill = target if ratio < 1.0 else 0.0  # scale-down: as if at target; scale-up: as if idle
    filled = sum(values) + fill * missing
    count = len(values) + missing
    new_ratio = filled / (target * count)
    flips = (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)
    if _within(new_ratio, tolerance) or flips:
        return current
    desired = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current
    return desired


def external_average_value_replicas(
    status_replicas: int, total: float, target_per_pod: float, tolerance: float = 0.1
) -> int:
    """Desired replicas for an ``External`` metric with an ``AverageValue`` target (KEDA's
    trigger): ``ceil(total / target)`` unless the per-replica ratio is within tolerance."""
    if status_replicas <= 0:
        return math.ceil(total / target_per_pod)
    ratio = total / (target_per_pod * status_replicas)
    if _within(ratio, tolerance):
        return status_replicas
    return math.ceil(total / target_per_pod)


def _change_in_period(events: tuple[tuple[float, int], ...], period_s: float, now: float) -> int:
    return sum(n for t, n in events if t > now - period_s)


def _period_start(current: int, period_s: float, state: HPAState, now: float) -> int:
    """Replicas at the start of a policy's period: current minus the scale events within it."""
    added = _change_in_period(state.scale_up_events, period_s, now)
    removed = _change_in_period(state.scale_down_events, period_s, now)
    return current - added + removed


def _scale_up_limit(current: int, rules: ScalingRules, state: HPAState, now: float) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for pol in rules.policies:
        start = _period_start(current, pol.period_s, state, now)
        if pol.kind == "Pods":
            proposals.append(start + pol.value)
        else:
            proposals.append(math.ceil(start * (1 + pol.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select == "Min" else max(proposals)


def _scale_down_limit(current: int, rules: ScalingRules, state: HPAState, now: float) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for pol in rules.policies:
        start = _period_start(current, pol.period_s, state, now)
        if pol.kind == "Pods":
            proposals.append(start - pol.value)
        else:
            proposals.append(int(start * (1 - pol.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select == "Min" else min(proposals)


def _stabilize(
    current: int, desired: int, cfg: HPAConfig, state: HPAState, now: float
) -> tuple[int, HPAState]:
    up_cut = now - cfg.scale_up.stabilization_window_s
    down_cut = now - cfg.scale_down.stabilization_window_s
    up_rec = down_rec = desired
    for t, rec in state.recommendations:
        if t > up_cut:
            up_rec = min(up_rec, rec)
        if t > down_cut:
            down_rec = max(down_rec, rec)
    result = max(current, up_rec)
    result = min(result, down_rec)
    kept = tuple((t, r) for t, r in state.recommendations if t > min(up_cut, down_cut))
    return result, replace(state, recommendations=(*kept, (now, desired)))


def _rate_limit(
    current: int, desired: int, cfg: HPAConfig, state: HPAState, now: float
) -> tuple[int, HPAReason]:
    if desired > current:
        limit = max(current, _scale_up_limit(current, cfg.scale_up, state, now))
        if cfg.max_replicas > limit:
            allowed, reason = limit, HPAReason.ScaleUpLimit
        else:
            allowed, reason = cfg.max_replicas, HPAReason.TooManyReplicas
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(current, _scale_down_limit(current, cfg.scale_down, state, now))
        if cfg.min_replicas < limit:
            allowed, reason = limit, HPAReason.ScaleDownLimit
        else:
            allowed, reason = cfg.min_replicas, HPAReason.TooFewReplicas
        if desired < allowed:
            return allowed, reason
    return desired, HPAReason.DesiredWithinRange


def _record(state: HPAState, cfg: HPAConfig, current: int, new: int, now: float) -> HPAState:
    longest = max(
        [p.period_s for p in (*cfg.scale_up.policies, *cfg.scale_down.policies)], default=0.0
    )
    up = tuple(e for e in state.scale_up_events if e[0] > now - longest)
    down = tuple(e for e in state.scale_down_events if e[0] > now - longest)
    if new > current:
        up = (*up, (now, new - current))
    elif new < current:
        down = (*down, (now, current - new))
    return replace(state, scale_up_events=up, scale_down_events=down)


def hpa_reconcile(
    current: int, metric_desired: int | None, cfg: HPAConfig, state: HPAState, now: float
) -> tuple[int, HPAReason, HPAState]:
    """One HPA sync: the replicas to write for a target at ``current`` (its ``spec.replicas``),
    given the metric's proposal (``None`` = the metric could not be read)."""
    if current == 0 and cfg.min_replicas != 0:
        return 0, HPAReason.ScalingDisabled, state
    if current > cfg.max_replicas:
        new = cfg.max_replicas
        return new, HPAReason.AboveMaxReplicas, _record(state, cfg, current, new, now)
    if current < cfg.min_replicas:
        new = cfg.min_replicas
        return new, HPAReason.BelowMinReplicas, _record(state, cfg, current, new, now)
    if metric_desired is None:
        return current, HPAReason.FailedGetMetrics, state
    stabilized, state = _stabilize(current, metric_desired, cfg, state, now)
    new, reason = _rate_limit(current, stabilized, cfg, state, now)
    if reason == HPAReason.DesiredWithinRange and stabilized != metric_desired:
        reason = (
            HPAReason.ScaleDownStabilized
            if stabilized > metric_desired
            else HPAReason.ScaleUpStabilized
        )
    if new != current:
        state = _record(state, cfg, current, new, now)
    return new, reason, state
