"""Pods and pools: lifecycle, start-up delay, draining and GPU accounting.

A pod goes pending → loading → ready → draining → gone. Loading takes the model's weights over
the load bandwidth plus the container start (``ServingProfile.load_time_s``); a draining pod takes
no new requests and disappears when its last in-flight request finishes. GPUs are paid for from
the moment a pod starts loading until it is gone.

Example: a Llama-3-70B replica on 4×H100 at $3.00/GPU-hour that lives 30 minutes costs
4 × 0.5 h × $3.00 = $6.00 and 2 GPU-hours.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from simulator.engine import Engine, EngineConfig
from simulator.perf.catalog import ServingProfile

Role = Literal["aggregated", "prefill", "decode", "expert-parallel"]
ROLES: tuple[Role, ...] = ("aggregated", "prefill", "decode", "expert-parallel")


class Phase(enum.IntEnum):
    PENDING = 0
    LOADING = 1
    READY = 2
    DRAINING = 3
    GONE = 4


@dataclass(frozen=True, slots=True)
class StartupSpec:
    """How long a new replica takes to serve: scheduling, container start, weight loading."""

    pending_s: float = 0.0
    container_start_s: float = 20.0
    load_gbps: float = 2.0  # weight-loading bandwidth, GB/s (object store or PVC)


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A set of identical replicas of one model on one accelerator, in one role."""

    name: str
    model: str
    role: Role
    profile: ServingProfile
    engine: EngineConfig
    price_per_gpu_hour: float
    replicas: int
    min_replicas: int = 0
    max_replicas: int = 64
    startup: StartupSpec = field(default_factory=StartupSpec)

    @property
    def accelerator(self) -> str:
        return self.profile.accelerator.name

    @property
    def gpus_per_replica(self) -> int:
        return self.profile.gpus

    @property
    def pod_type(self) -> str:
        """llm-d's ``pod_type`` feature: 'prefill', 'decode' or '' for aggregated/EP pods."""
        return self.role if self.role in ("prefill", "decode") else ""

    def startup_time_s(self) -> float:
        return self.startup.pending_s + self.profile.load_time_s(
            self.startup.load_gbps, self.startup.container_start_s
        )


class Pod:
    """One replica (for expert-parallel pools, one multi-node EP unit)."""

    __slots__ = (
        "engine",
        "gone_t",
        "index",
        "loading_t",
        "name",
        "phase",
        "pool",
        "ready_t",
        "version",
    )

    def __init__(self, name: str, pool: Pool, index: int, engine: Engine) -> None:
        self.name = name
        self.pool = pool
        self.index = index
        self.engine = engine
        self.phase = Phase.PENDING
        self.loading_t = -1.0
        self.ready_t = -1.0
        self.gone_t = -1.0
        self.version = 0  # bumps whenever a scheduled engine event becomes stale

    @property
    def accepting(self) -> bool:
        return self.phase == Phase.READY

    def gpu_seconds(self, until: float) -> float:
        if self.loading_t < 0:
            return 0.0
        end = self.gone_t if self.gone_t >= 0 else until
        return max(0.0, end - self.loading_t) * self.pool.spec.gpus_per_replica


class Pool:
    """Runtime state of a pool: its pods and what the controller wants."""

    def __init__(self, spec: PoolSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.pods: list[Pod] = []  # live pods (not gone)
        self.retired: list[Pod] = []
        self.desired = spec.replicas
        self.created = 0
        self.scale_events = 0

    @property
    def ready_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.phase == Phase.READY]

    @property
    def replicas(self) -> int:
        """Replicas that count against desired: everything not draining or gone."""
        return sum(1 for p in self.pods if p.phase < Phase.DRAINING)

    def gpu_seconds(self, until: float) -> float:
        return sum(p.gpu_seconds(until) for p in self.pods) + sum(
            p.gpu_seconds(until) for p in self.retired
        )
