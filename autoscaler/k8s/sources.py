"""What the in-cluster controller observes besides the API server: per-pool metrics and capacity.

Why these protocols are narrow: the controller hands a metrics source the *pools* of every
policy (namespace, policy, pool, model, role, accelerator, the target and its pod selector) —
never pods — and gets back one :class:`~policies.types.LoadWindow` per pool and one
:class:`~autoscaler.sources.Demand` per policy. A Prometheus implementation therefore batches
each metric across all pools (``sum by (namespace, pool) (rate(...))``), so the number of
queries per tick depends on neither pods nor pools. The in-memory implementations here serve
tests and benchmarks and count the queries they would have made.

Capacity comes from a :class:`CapacitySource`: per policy, a ``policies.types.CapacityModel``
and whether the learned model behind it is ready (the ``ModelReady`` condition), asked after
the decision so it can describe the answers the decision used.
:class:`~autoscaler.predictor_capacity.PredictorCapacitySource` asks the predictor service
(``sloscaler run --predictor-url``); :class:`StaticCapacity` answers from fixed per-accelerator
numbers (``--capacity``) — the analytic fallback's role, and the predictor source's fallback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.sources import Demand
from policies.types import (
    Capacity,
    CapacityModel,
    DemandMix,
    LoadWindow,
    PoolSnapshot,
    Role,
    SLOTarget,
)


@dataclass(frozen=True, slots=True)
class PoolRef:
    namespace: str
    policy: str
    pool: str
    model: str
    role: Role
    accelerator: str
    target_kind: str
    target_name: str
    selector: str  # the target's pod label selector (from its scale subresource)
    replicas: int | None = None  # the target's spec.replicas this tick (None: not known)


@dataclass(frozen=True, slots=True)
class PolicyRef:
    namespace: str
    name: str
    model: str
    pools: tuple[PoolRef, ...]
    ttft_objective_s: float | None = None  # p90 TTFT objective: windows count misses over it
    tpot_objective_s: float | None = None  # p90 TPOT objective

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class PolicyObservation:
    loads: Mapping[str, LoadWindow | None]  # pool → window (None: no usable data)
    demand: Demand  # offered at the gateway for the policy's model


class PolicyMetricsSource(Protocol):
    def observe(
        self, policies: Sequence[PolicyRef], now: float
    ) -> Mapping[tuple[str, str], PolicyObservation]:
        """Windows and demand as of ``now`` for every policy (missing keys: no data)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelStatus:
    ready: bool
    reason: str  # CamelCase, for the ModelReady condition
    message: str
    age_s: float | None = None  # since the model was trained
    coverage: float | None = None  # observed share of requests under the predicted p90


class CapacitySource(Protocol):
    def capacity_model(self, policy: PolicyRef) -> CapacityModel:
        """The model the policy's decision this tick asks (called once per policy and tick)."""
        ...

    def model_status(self, policy: PolicyRef) -> ModelStatus:
        """``ModelReady`` for the policy, asked after its decision."""
        ...


# --- in-memory implementations ------------------------------------------------------------------

#: batched queries the Prometheus source asks per tick, whatever the pods and pools
#: (``autoscaler.prometheus_source.Query``; a test keeps the two equal)
QUERIES_PER_TICK = 12


@dataclass
class InMemoryMetricsSource:
    """Loads and demand set by the test; ``queries`` counts what Prometheus would have been
    asked: :data:`QUERIES_PER_TICK` batched queries per ``observe``, whatever the pods."""

    loads: dict[tuple[str, str, str], LoadWindow | None] = field(default_factory=dict)
    demand: dict[tuple[str, str], Demand] = field(default_factory=dict)
    queries: int = 0

    def set_load(self, namespace: str, policy: str, pool: str, load: LoadWindow | None) -> None:
        self.loads[(namespace, policy, pool)] = load

    def set_demand(
        self, namespace: str, policy: str, arrival_rps: float | None, queued: int = 0
    ) -> None:
        self.demand[(namespace, policy)] = Demand(arrival_rps, queued)

    def observe(
        self, policies: Sequence[PolicyRef], now: float
    ) -> Mapping[tuple[str, str], PolicyObservation]:
        self.queries += QUERIES_PER_TICK
        out: dict[tuple[str, str], PolicyObservation] = {}
        for p in policies:
            if p.key not in self.demand:
                continue
            loads = {q.pool: self.loads.get((p.namespace, p.name, q.pool)) for q in p.pools}
            out[p.key] = PolicyObservation(loads, self.demand[p.key])
        return out


class NoMetricsSource:
    """A source with no data: every policy holds its pools (``MetricsAvailable=False``). What
    ``sloscaler run`` uses until a Prometheus source is configured."""

    def observe(
        self, policies: Sequence[PolicyRef], now: float
    ) -> Mapping[tuple[str, str], PolicyObservation]:
        return {}


def steady_load(rps: float, ready: int, window_s: float = 60.0) -> LoadWindow:
    """A window of ``rps`` spread over ``ready`` pods with 1024/256-token requests."""
    return LoadWindow(
        window_s=window_s,
        request_rps=rps,
        prompt_tokens_rps=rps * 1024,
        generation_tokens_rps=rps * 256,
        mean_input_tokens=1024.0,
        mean_output_tokens=256.0,
        prefix_hit_ratio=0.0,
        kv_usage=min(1.0, 0.1 * rps / max(ready, 1)),
        running=rps * 2,
        waiting=0.0,
        ttft_p90_s=None,
        itl_p90_s=None,
        finished=int(rps * window_s),
    )


@dataclass(frozen=True)
class FixedLatencyModel:
    """``CapacityModel`` from fixed per-accelerator capacity. Latency grows with utilisation
    ``ρ = rps / capacity`` as ``t(ρ) = t₀ / (1 − ρ/2)``, so it doubles at capacity. Example:
    capacity 4 rps, TTFT at light load 100 ms → at 2 rps (ρ = 0.5) p90 TTFT = 133 ms, at 4 rps
    200 ms."""

    rps_per_replica: Mapping[str, float]
    ttft_light_s: float = 0.1
    tpot_light_s: float = 0.01
    default_rps: float = 1.0

    def _cap(self, pool: PoolSnapshot) -> float:
        return self.rps_per_replica.get(pool.accelerator, self.default_rps)

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        rps = self._cap(pool)
        ttft, tpot = self.predict(pool, mix, rps)
        return Capacity(rps, ttft, tpot, "fallback")

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        cap = self._cap(pool)
        rho = rps_per_replica / cap if cap > 0 else math.inf
        if rho >= 2:
            return math.inf, math.inf
        scale = 1.0 / (1.0 - rho / 2)
        return self.ttft_light_s * scale, self.tpot_light_s * scale


@dataclass
class StaticCapacity:
    """:class:`CapacitySource` with one fixed model for every policy."""

    model: FixedLatencyModel = field(default_factory=lambda: FixedLatencyModel({}))
    status: ModelStatus = field(
        default_factory=lambda: ModelStatus(
            False, "AnalyticFallback", "no learned model; fixed per-accelerator capacity serves"
        )
    )

    def capacity_model(self, policy: PolicyRef) -> CapacityModel:
        return self.model

    def model_status(self, policy: PolicyRef) -> ModelStatus:
        return self.status
