"""The control loop: observe → learn → decide → act, one level-based tick at a time.

The loop owns what is stateful (the policy state, the capacity model's learned corrections, the
decision history for ``explain``) and nothing else: observations come in through the adapters,
``policies.decide`` makes the decision, and the adapter applies it. Each tick logs exactly one
structured ``decision`` line per pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoscaler.logging import get_logger
from autoscaler.sources import Demand
from policies.decide import decide, demand_mix
from policies.types import (
    CapacityModel,
    ClusterSnapshot,
    Decision,
    DemandMix,
    LoadWindow,
    ModelSnapshot,
    PolicyConfig,
    PolicyState,
    PoolDecision,
    PoolSnapshot,
    Role,
)


class OnlineCapacityModel(CapacityModel, Protocol):
    """A capacity model that learns from what the loop observes: every pool's window each tick
    (at ``now``) and the lengths of finished requests."""

    def observe(self, pool: PoolSnapshot, mix: DemandMix, now: float) -> None: ...

    def observe_requests(
        self, model: str, requests: Iterable[tuple[int, int]], now: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A pool as the cluster state reports it (no metrics)."""

    name: str
    model: str
    role: Role
    accelerator: str
    gpus_per_replica: int
    price_per_gpu_hour: float
    replicas: int
    ready: int
    startup_s: float


def decision_fields(d: PoolDecision) -> dict[str, object]:
    """The fields of one pool's ``decision`` log line (shared by every loop that logs one)."""
    return {
        "pool": d.pool,
        "model": d.model,
        "role": d.role,
        "accelerator": d.accelerator,
        "current": d.current,
        "raw": d.raw,
        "replicas": d.replicas,
        "reason": d.reason.value,
        "message": d.message,
        "demand_rps": None if d.demand_rps is None else round(d.demand_rps, 3),
        "capacity_rps": None if d.capacity_rps is None else round(d.capacity_rps, 3),
        "capacity_source": d.capacity_source,
        "capacity_scale": round(d.capacity_scale, 3),
        "predicted_ttft_p90_s": d.predicted_ttft_p90_s,
        "predicted_tpot_p90_s": d.predicted_tpot_p90_s,
        "slo_ttft_s": d.slo_ttft_s,
        "slo_tpot_s": d.slo_tpot_s,
    }


@dataclass
class ControlLoop:
    config: PolicyConfig
    capacity: OnlineCapacityModel
    state: PolicyState = field(default_factory=PolicyState)
    history: list[tuple[float, Decision]] = field(default_factory=list)
    log: Any = field(default_factory=lambda: get_logger("sloscaler.loop"))

    def tick(
        self,
        now: float,
        pools: Sequence[PoolInfo],
        loads: Mapping[str, LoadWindow | None],
        demand: Mapping[str, Demand],
    ) -> Decision:
        snap_pools = tuple(
            PoolSnapshot(
                name=p.name,
                model=p.model,
                role=p.role,
                accelerator=p.accelerator,
                gpus_per_replica=p.gpus_per_replica,
                price_per_gpu_hour=p.price_per_gpu_hour,
                replicas=p.replicas,
                ready=p.ready,
                startup_s=p.startup_s,
                load=loads.get(p.name),
            )
            for p in pools
        )
        models = tuple(ModelSnapshot(m, d.arrival_rps, d.queued) for m, d in sorted(demand.items()))
        for p in snap_pools:
            peers = [q for q in snap_pools if q.model == p.model]
            mix = demand_mix(peers, self.state.mixes.get(p.model), self.config.default_mix)
            self.capacity.observe(p, mix, now)
        snapshot = ClusterSnapshot(snap_pools, models, self.capacity)
        decision, self.state, _diag = decide(snapshot, self.state, self.config, now)
        self.history.append((now, decision))
        for d in decision.pools:
            self.log.info("decision", t=round(now, 3), **decision_fields(d))
        return decision
