"""The data the decision core reads and writes: snapshots, config, state, decisions.

All of it is frozen. ``decide`` is a function of a :class:`ClusterSnapshot`, the previous
:class:`PolicyState`, a :class:`PolicyConfig` and ``now``; it returns a :class:`Decision`, the new
state and diagnostics. Missing data is ``None``, never zero: a pool whose metrics are stale has
``load=None`` and a model whose gateway rate is unknown has ``arrival_rps=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from policies.reasons import Reason

Role = Literal["aggregated", "prefill", "decode", "expert-parallel"]


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """What one pool served over the last window, summed over its pods (rates per second)."""

    window_s: float
    request_rps: float  # finished requests per second
    prompt_tokens_rps: float
    generation_tokens_rps: float
    mean_input_tokens: float | None  # from vllm:request_prompt_tokens _sum/_count
    mean_output_tokens: float | None
    prefix_hit_ratio: float | None  # prefix_cache_hits / prefix_cache_queries
    kv_usage: float  # mean over ready pods, 0–1
    running: float  # total over pods
    waiting: float
    ttft_p90_s: float | None
    itl_p90_s: float | None
    finished: int = 0  # requests finished in the window
    ttft_misses: float | None = None  # of them, over the TTFT objective (from the histogram)
    tpot_misses: float | None = None  # of them, over the TPOT objective
    # The window's TTFT and per-request TPOT at the SLO's attainment quantile (0.99 for a 0.99
    # target; histogram_quantile of vllm:time_to_first_token and
    # vllm:request_time_per_output_token): a window meets the objective on its own when both are
    # inside it, which is what a learned capacity must be held to.
    ttft_at_target_s: float | None = None
    tpot_at_target_s: float | None = None


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    name: str
    model: str
    role: Role
    accelerator: str
    gpus_per_replica: int
    price_per_gpu_hour: float
    replicas: int  # current desired/spec replicas (not draining)
    ready: int
    startup_s: float  # time a new replica needs to become ready (learned or estimated)
    load: LoadWindow | None  # None: no data for this pool this tick


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    name: str
    arrival_rps: float | None  # requests offered at the gateway (scheduled + shed), per second
    queued: int  # requests held in the gateway's flow-control queue


@dataclass(frozen=True, slots=True)
class DemandMix:
    """The shape of demand a capacity is asked for."""

    input_tokens: float
    output_tokens: float
    prefix_hit_ratio: float = 0.0


@dataclass(frozen=True, slots=True)
class SLOTarget:
    ttft_s: float
    tpot_s: float
    attainment: float = 0.99


@dataclass(frozen=True, slots=True)
class Capacity:
    """Largest per-replica request rate meeting the SLO, and the latency predicted there."""

    rps: float
    ttft_p90_s: float
    tpot_p90_s: float
    source: str  # "learned" or "fallback"


class CapacityModel(Protocol):
    """What the decision core needs from the predictor (implemented outside ``policies``)."""

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity: ...

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        """(p90 TTFT, p90 TPOT) in seconds of one replica serving ``rps_per_replica``."""
        ...


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    pools: tuple[PoolSnapshot, ...]
    models: tuple[ModelSnapshot, ...]
    capacity: CapacityModel  # answers from the predictor (learned, or its analytic fallback)


@dataclass(frozen=True, slots=True)
class PoolLimits:
    min_replicas: int = 0
    max_replicas: int = 64
    scale_to_zero: bool = False


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Knobs of the SLO policy; every field has a unit and a reason in ``docs``."""

    slo: Mapping[str, SLOTarget]  # per model
    tick_s: float = 15.0  # control interval; the forecaster's step
    limits: Mapping[str, PoolLimits] = field(default_factory=dict)  # per pool
    headroom: float = 0.10  # fraction of capacity kept free
    forecast_quantile: float = 0.90  # upper quantile of demand sized for
    scale_up_window_s: float = 0.0  # HPA's default: react at once
    scale_down_window_s: float = 300.0  # HPA's default stabilization
    scale_up_max_pods: int = 4  # per tick, HPA's default policy max(4 pods, 100 %)
    scale_up_max_percent: float = 100.0
    scale_down_max_percent: float = 100.0
    idle_before_zero_s: float = 600.0  # positive evidence of idleness needed for zero
    gpu_inventory: Mapping[str, int] = field(default_factory=dict)  # accelerator → GPUs
    mix_hysteresis: float = 0.05  # a new variant mix must be ≥ 5 % cheaper to replace the old
    default_mix: DemandMix = DemandMix(1024.0, 256.0, 0.0)
    mix_half_life_s: float = 120.0  # smoothing of the observed demand shape (0: none)
    learn_from_attainment: bool = True  # scale capacity by observed vs target attainment


@dataclass(frozen=True, slots=True)
class ForecastState:
    level: float
    trend: float
    residual_var: float
    samples: int
    last_t: float
    recent: tuple[float, ...] = ()  # recent observations (for the burst guard)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Observed SLO attainment of a model (exponentially weighted) and the capacity scale it
    has taught: > 1 when the profile was pessimistic, < 1 when it was optimistic."""

    scale: float = 1.0
    finished: float = 0.0
    misses: float = 0.0
    last_t: float = -1.0
    capacity: float = 0.0  # the profile's per-replica capacity it last scaled (summed over pools)


class Recommendation(NamedTuple):
    """One tick's recommendation for a pool, kept while a stabilization window can read it."""

    t: float
    replicas: int
    capacity_rps: float | None = None  # per replica it was sized with, > 0; None: unknown (a hold)


@dataclass(frozen=True, slots=True)
class PoolState:
    history: tuple[Recommendation, ...] = ()  # within the windows, oldest first
    idle_since: float | None = None
    first_look_until: float | None = None  # a pool seen first does not shrink before this time


@dataclass(frozen=True, slots=True)
class PolicyState:
    pools: Mapping[str, PoolState] = field(default_factory=dict)
    forecasts: Mapping[str, ForecastState] = field(default_factory=dict)
    mixes: Mapping[str, DemandMix] = field(default_factory=dict)  # last known mix per model
    mix_weights: Mapping[str, float] = field(default_factory=dict)  # requests behind each mix
    variant_choice: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    budgets: Mapping[str, BudgetState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stage:
    """One normalization stage's outcome."""

    name: str
    replicas: int
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class PoolDecision:
    pool: str
    model: str
    role: Role
    accelerator: str
    current: int
    raw: int  # the recommendation before normalization
    replicas: int  # after normalization
    reason: Reason
    message: str
    demand_rps: float | None
    capacity_rps: float | None
    capacity_source: str
    predicted_ttft_p90_s: float | None
    predicted_tpot_p90_s: float | None
    slo_ttft_s: float
    slo_tpot_s: float
    stages: tuple[Stage, ...] = ()
    capacity_scale: float = 1.0  # the error budget's factor, included in capacity_rps


@dataclass(frozen=True, slots=True)
class Decision:
    pools: tuple[PoolDecision, ...]
    routing_weights: Mapping[str, Mapping[str, float]]  # model → pool → weight
    admit_sheddable: Mapping[str, bool]  # model → admit priority < 0 requests

    def replicas(self) -> dict[str, int]:
        return {d.pool: d.replicas for d in self.pools}


@dataclass(frozen=True, slots=True)
class Diagnostics:
    forecast_rps: Mapping[str, float]  # model → upper-quantile demand over the horizon
    observed_rps: Mapping[str, float | None]
    mix: Mapping[str, DemandMix]
