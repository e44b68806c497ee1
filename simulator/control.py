"""The seam between the simulated cluster and whatever controls it.

The simulator knows nothing of sloscaler's controller: it calls a :class:`Controller` every
``tick_interval_s`` with a read-only :class:`ClusterView` and applies the returned
:class:`ControlActions` (desired replicas per pool, routing weights across pools, whether
sheddable requests are admitted). The controller's simulator adapter implements this protocol;
``static`` runs need no controller at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from simulator.metrics import GatewayMetrics, VllmMetrics


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod as the cluster state (not the metrics) reports it."""

    name: str
    phase: str  # pending | loading | ready | draining
    started_s: float  # when it started loading (-1 while pending)
    ready_s: float  # when it became ready (-1 before)
    metrics: VllmMetrics


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    model: str
    role: str
    accelerator: str
    gpus_per_replica: int
    price_per_gpu_hour: float
    min_replicas: int
    max_replicas: int
    desired: int
    pods: tuple[PodView, ...]
    startup_estimate_s: float

    @property
    def replicas(self) -> int:
        return sum(1 for p in self.pods if p.phase != "draining")

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods if p.phase == "ready")


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """A request sample for request-level learning (llm-d's training entry, simulator side)."""

    pool: str
    pod: str
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix_hit_tokens: int
    ttft_s: float
    tpot_s: float
    features: Mapping[str, float]  # the endpoint features seen when the request was routed


@dataclass(frozen=True, slots=True)
class ClusterView:
    now: float
    pools: tuple[PoolView, ...]
    gateway: Mapping[str, GatewayMetrics]  # per model (one InferencePool each)
    finished: Sequence[FinishedRequest] = ()


@dataclass(frozen=True, slots=True)
class ControlActions:
    """``None`` means "no opinion": leave that knob as it is."""

    replicas: Mapping[str, int] | None = None
    routing_weights: Mapping[str, Mapping[str, float]] | None = None  # model → pool → weight
    admit_sheddable: Mapping[str, bool] | None = None  # model → admit priority<0 requests


class Controller(Protocol):
    """``tick`` runs every ``tick_interval_s``, and also ``wake_delay_s`` after a request is
    held at the gateway for a model with no live pod (scale from zero cannot wait a tick)."""

    name: str
    tick_interval_s: float
    wake_delay_s: float

    def tick(self, view: ClusterView) -> ControlActions: ...


@runtime_checkable
class LearnsFromRequests(Protocol):
    """A gateway scorer that learns from the requests it routed, as llm-d's endpoint picker
    posts every completed request (the features it routed on, the TTFT and TPOT it got) to its
    latency predictor's training endpoint. The cluster calls ``observe`` when a request
    completes, ``now`` being the completion time."""

    def observe(self, sample: FinishedRequest, now: float) -> None: ...

    def report(self) -> Mapping[str, float | int | str | None]:
        """What it learned, for the run's summary (``gateway`` in ``simulate --json``)."""
        ...
