"""KEDA's ScaledObject with a Prometheus trigger: the ``keda-queue`` baseline.

Why two loops: KEDA itself only decides *activation* — every ``pollingInterval`` (30 s) its
operator evaluates the trigger, and it moves the target between 0 and 1 replicas; above one
replica it hands the metric to an HPA it creates (``External`` metric, ``AverageValue`` target =
the trigger's threshold), so HPA's algorithm, tolerance and default behaviour apply
(:mod:`policies.baselines.hpa`). Modelled as upstream's scale executor does it:

- the trigger is *active* when its value exceeds ``activationThreshold`` (default 0);
- active and at 0 replicas → ``max(minReplicaCount, 1)``;
- not active, above 0 replicas, ``minReplicaCount`` 0, and the last active time older than
  ``cooldownPeriod`` (300 s) → 0 (the cooldown applies to N → 0 only);
- otherwise the HPA (sync 15 s) sizes the target: ``desired = ceil(value / threshold)``.

Example (threshold 5, 4 replicas): ``sum(vllm:num_requests_waiting)`` = 23 → the HPA's ratio is
23 / (5 · 4) = 1.15, outside the ±10 % tolerance → ``ceil(23 / 5) = 5`` replicas. With 0 waiting
the HPA wants ``ceil(0 / 5) = 0`` → its ``minReplicas`` (1) after the 300 s stabilization; only
the operator may then take it to 0, once the trigger has been inactive for the cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from policies.baselines.hpa import (
    HPAConfig,
    HPAReason,
    HPAState,
    external_average_value_replicas,
    hpa_reconcile,
)


class KedaReason(StrEnum):
    """What the operator did, or that it left the target to the HPA."""

    Activated = "Activated"  # 0 → max(minReplicaCount, 1)
    Deactivated = "Deactivated"  # N → 0 after the cooldown
    BelowMinReplicaCount = "BelowMinReplicaCount"
    HPA = "HPA"  # the HPA's decision (its reason is returned alongside)


@dataclass(frozen=True, slots=True)
class KedaConfig:
    """One ScaledObject (defaults = KEDA's, threshold and polling as the baseline specifies)."""

    threshold: float = 5.0  # trigger metadata.threshold, per replica
    activation_threshold: float = 0.0  # metadata.activationThreshold
    polling_interval_s: float = 30.0
    cooldown_s: float = 300.0
    min_replica_count: int = 0
    max_replica_count: int = 100
    hpa: HPAConfig = field(default_factory=HPAConfig)  # the HPA KEDA creates (behaviour, tol.)

    def hpa_config(self) -> HPAConfig:
        """The generated HPA: ``minReplicas = max(minReplicaCount, 1)``, ``maxReplicas`` =
        ``maxReplicaCount``."""
        return replace(
            self.hpa,
            min_replicas=max(1, self.min_replica_count),
            max_replicas=self.max_replica_count,
        )


@dataclass(frozen=True, slots=True)
class KedaState:
    last_active_t: float | None = None  # ScaledObject status.lastActiveTime
    next_poll_t: float = 0.0
    hpa: HPAState = field(default_factory=HPAState)


def keda_step(
    value: float | None, current: int, cfg: KedaConfig, state: KedaState, now: float
) -> tuple[int, KedaReason, HPAReason | None, KedaState]:
    """One sync of the target at ``current`` replicas with the trigger's query result ``value``
    (``None``: the query failed or returned nothing, which KEDA treats as 0 by default)."""
    metric = 0.0 if value is None else value
    if now >= state.next_poll_t:
        active = metric > cfg.activation_threshold
        last = now if active else state.last_active_t
        state = replace(state, last_active_t=last, next_poll_t=now + cfg.polling_interval_s)
        if current < cfg.min_replica_count:
            return cfg.min_replica_count, KedaReason.BelowMinReplicaCount, None, state
        if active and current == 0:
            return max(cfg.min_replica_count, 1), KedaReason.Activated, None, state
        cooled = last is None or now >= last + cfg.cooldown_s
        if not active and current > 0 and cfg.min_replica_count == 0 and cooled:
            return 0, KedaReason.Deactivated, None, state
    if current == 0:
        return 0, KedaReason.HPA, HPAReason.ScalingDisabled, state
    hpa = cfg.hpa_config()
    desired = external_average_value_replicas(current, metric, cfg.threshold, hpa.tolerance)
    replicas, reason, hpa_state = hpa_reconcile(current, desired, hpa, state.hpa, now)
    return replicas, KedaReason.HPA, reason, replace(state, hpa=hpa_state)
