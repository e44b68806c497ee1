"""The simulator adapter: runs the control loop against the simulated cluster.

It implements ``simulator.control.Controller``: each tick it reads the cluster state and the
pods' metrics from the simulator (in memory), hands them to the :class:`ControlLoop`, and turns
the decision into actions (replicas, routing weights, admission of sheddable requests). Start-up
time is learned from the pods that became ready; until one has, the profile's estimate serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoscaler.capacity import PoolProfile, ProfileCapacityModel
from autoscaler.learned_capacity import LearnedCapacityModel
from autoscaler.loop import ControlLoop, OnlineCapacityModel, PoolInfo
from autoscaler.sources import SimulatorMetricsSource
from policies.types import PolicyConfig, PoolLimits, SLOTarget
from simulator.control import ClusterView, ControlActions
from simulator.perf.transport import transport
from simulator.scenario import Scenario, ScenarioError


class SLOPolicyParams(BaseModel):
    """``policy.params`` of a scenario for the ``slo`` policy (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_s: float = Field(15.0, gt=0, description="control interval, s")
    headroom: float = Field(0.10, ge=0, lt=1, description="capacity fraction kept free")
    forecast_quantile: float = Field(0.90, gt=0.5, lt=1, description="demand quantile sized for")
    scale_up_window_s: float = Field(0.0, ge=0, description="scale-up stabilization, s")
    scale_down_window_s: float = Field(300.0, ge=0, description="scale-down stabilization, s")
    idle_before_zero_s: float = Field(600.0, ge=0, description="idleness proof before zero, s")
    mix_half_life_s: float = Field(
        120.0, ge=0, description="half-life of the demand-shape smoothing (lengths, prefix hits), s"
    )
    metrics_window_s: float = Field(60.0, gt=0, description="window for rates and quantiles, s")
    learn: bool = Field(True, description="correct profile capacity with observed latency")
    learn_from_attainment: bool = Field(
        True, description="scale capacity by observed SLO attainment against the target"
    )
    scale_to_zero: list[str] = Field(
        default_factory=list, description="pools allowed to scale to zero (min_replicas must be 0)"
    )
    capacity_model: Literal["profile", "learned"] = Field(
        "profile",
        description="per-replica capacity from the profile only, or from window models learned "
        "online once they bound it (the profile meanwhile)",
    )


def slo_params(scenario: Scenario) -> SLOPolicyParams:
    try:
        return SLOPolicyParams.model_validate(scenario.policy.params)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ScenarioError(
            f"{scenario.source or scenario.name}: policy.params.{loc}: {first['msg']} "
            f"(value {first.get('input')!r})"
        ) from None


def policy_config(scenario: Scenario, params: SLOPolicyParams) -> PolicyConfig:
    pools = {p.name: p for p in scenario.pools}
    for name in params.scale_to_zero:
        if name not in pools:
            raise ScenarioError(f"policy.params.scale_to_zero: unknown pool {name!r}")
        if pools[name].min_replicas != 0:
            raise ScenarioError(
                f"policy.params.scale_to_zero: pool {name!r} has min_replicas "
                f"{pools[name].min_replicas}; scale-to-zero needs 0"
            )
    slo = SLOTarget(
        scenario.slo.ttft_ms / 1000, scenario.slo.tpot_ms / 1000, scenario.slo.attainment
    )
    return PolicyConfig(
        slo={p.model: slo for p in scenario.pools},
        tick_s=params.tick_s,
        limits={
            p.name: PoolLimits(
                max(p.min_replicas, 1) if p.name not in params.scale_to_zero else 0,
                p.max_replicas,
                p.name in params.scale_to_zero,
            )
            for p in scenario.pools
        },
        headroom=params.headroom,
        forecast_quantile=params.forecast_quantile,
        scale_up_window_s=params.scale_up_window_s,
        scale_down_window_s=params.scale_down_window_s,
        mix_half_life_s=params.mix_half_life_s,
        idle_before_zero_s=params.idle_before_zero_s,
        gpu_inventory=dict(scenario.inventory),
        learn_from_attainment=params.learn_from_attainment,
    )


def pool_profiles(scenario: Scenario) -> dict[str, PoolProfile]:
    """The profile-based capacity inputs of every pool of ``scenario``."""
    link = transport(scenario.gateway.transport)
    out = {}
    for spec in scenario.pool_specs():
        per_token = link.transfer_time_s(spec.profile.model.kv_bytes_per_token)
        out[spec.name] = PoolProfile(spec.profile, spec.engine, spec.role, per_token)
    return out


@dataclass
class SimulatedController:
    """``simulator.control.Controller`` around a :class:`ControlLoop`."""

    loop: ControlLoop
    source: SimulatorMetricsSource
    name: str = "slo"
    tick_interval_s: float = 15.0
    wake_delay_s: float = 0.1  # WVA polls the gateway queue every 100 ms for scale from zero
    _startup: dict[str, dict[str, float]] = field(default_factory=dict)  # pool → pod → s

    def tick(self, view: ClusterView) -> ControlActions:
        infos = []
        for pool in view.pools:
            seen = self._startup.setdefault(pool.name, {})
            for pod in pool.pods:
                if pod.ready_s > 0 and pod.started_s >= 0 and pod.ready_s > pod.started_s:
                    seen[pod.name] = pod.ready_s - pod.started_s
            learned = sorted(seen.values())
            startup = learned[len(learned) // 2] if learned else pool.startup_estimate_s
            infos.append(
                PoolInfo(
                    name=pool.name,
                    model=pool.model,
                    role=pool.role,  # type: ignore[arg-type]
                    accelerator=pool.accelerator,
                    gpus_per_replica=pool.gpus_per_replica,
                    price_per_gpu_hour=pool.price_per_gpu_hour,
                    replicas=pool.replicas,
                    ready=pool.ready,
                    startup_s=startup,
                )
            )
        loads, demand = self.source.observe(view)
        model_of = {p.name: p.model for p in view.pools}
        by_model: dict[str, list[tuple[int, int]]] = {}
        for r in view.finished:
            by_model.setdefault(model_of[r.pool], []).append((r.input_tokens, r.output_tokens))
        for model, rows in by_model.items():
            self.loop.capacity.observe_requests(model, rows, view.now)
        decision = self.loop.tick(view.now, infos, loads, demand)
        return ControlActions(
            replicas=decision.replicas(),
            routing_weights=decision.routing_weights,
            admit_sheddable=decision.admit_sheddable,
        )


def slo_controller(scenario: Scenario) -> SimulatedController:
    params = slo_params(scenario)
    config = policy_config(scenario, params)
    profile = ProfileCapacityModel(pool_profiles(scenario), learn_latency=params.learn)
    capacity: OnlineCapacityModel = profile
    if params.capacity_model == "learned":
        capacity = LearnedCapacityModel(
            profile, quantile=scenario.slo.attainment, window_s=params.metrics_window_s
        )
    loop = ControlLoop(config, capacity)
    objectives = {m: (t.ttft_s, t.tpot_s) for m, t in config.slo.items()}
    attainment = {m: t.attainment for m, t in config.slo.items()}
    return SimulatedController(
        loop,
        SimulatorMetricsSource(params.metrics_window_s, objectives, attainment),
        tick_interval_s=params.tick_s,
    )
