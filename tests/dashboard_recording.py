"""A simulated closed-loop run recorded as one OpenMetrics file, as a cluster's Prometheus sees it.

Why it exists: the dashboards and the PrometheusRule read three kinds of series that only appear
together in a cluster — every vLLM pod's, the inference gateway's and the controller's own. This
module runs the SLO policy's control loop against the simulated cluster and records all three
every 15 s, labelled the way a cluster's scrape labels them, so a backfilled Prometheus can
answer every panel and rule expression:

* vLLM pods carry ``namespace``, ``pod`` and ``pool`` = the name of their pool's workload, as
  the PodMonitor of ``deploy/base/monitoring.yaml`` labels them, and the gateway ``namespace``;
  ``model_name`` is the SLOPolicy's ``spec.model``, which the per-policy rule group filters on;
* the controller's series come from :class:`~autoscaler.controller_metrics.ControllerMetrics`,
  fed each tick's decisions exactly as the in-cluster controller feeds it.

The run: Llama-3-8B on an H100 pool and an L40S pool, both allowed to scale to zero, for 30
minutes of a load that idles (the H100 pool goes to zero, the L40S pool is kept warm), bursts
past what the pools may grow to (sheddable requests are shed) and falls away. Capacity per
replica comes from :class:`~autoscaler.k8s.sources.FixedLatencyModel` (the analytic fallback),
which keeps the run to a few seconds; every decision still goes through the real policy
pipeline. The latency model's status is scripted: the fallback serves until
:data:`MODEL_TRAINED_S`, then a model "trained" then serves, whose coverage is measured against
the pods' TTFT histograms.

The predictor service's series come from a real :class:`~predictor.service.PredictorService` on
the run's clock, scraped as ``job`` :data:`PREDICTOR_JOB` in its own namespace: every 15 s it
predicts and is posted a batch of synthetic requests of the two accelerators (so it trains its
request-level model first, then on a cadence, and keeps its online coverage and adaptive offsets),
and it trains window models from a stand-in for Prometheus that has no windows for the first
5 minutes (a ``no_windows`` run), then publishes.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from autoscaler.capacity import ProfileCapacityModel
from autoscaler.controller_metrics import ControllerMetrics
from autoscaler.crd import SLOPolicySpec
from autoscaler.k8s.sources import FixedLatencyModel, ModelStatus, PolicyRef, PoolRef
from autoscaler.loop import ControlLoop
from autoscaler.sim_adapter import SimulatedController, policy_config, slo_params
from autoscaler.sources import SimulatorMetricsSource
from policies.types import Capacity, DemandMix, PoolSnapshot, SLOTarget
from predictor.boosting import BoostingParams
from predictor.clock import FixedClock
from predictor.features import NUMERIC_FEATURES
from predictor.models import ModelConfig
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WINDOW_FEATURES
from predictor.service import PredictorService, ServiceConfig, TrainingEntry
from predictor.synthetic import SYNTHETIC_ACCELERATORS, synthetic_samples
from predictor.training import RetrainPolicy, TrainingConfig
from predictor.window_models import WindowModelConfig
from predictor.window_registry import WindowModelRegistry
from predictor.window_training import WindowTrainingPolicy
from simulator.cluster import Cluster
from simulator.metrics import OpenMetricsWriter
from simulator.metrics.histogram import HistogramSnapshot
from simulator.metrics.samples import (
    FamilySamples,
    LabelTuple,
    MetricFamily,
    MetricsSource,
    MetricType,
    SeriesGroup,
)
from simulator.runner import run_scenario
from simulator.scenario import Scenario
from tests.window_data import window_features

T0 = 1_700_000_000.0  # the run's second 0, as Unix time
SCRAPE_S = 15.0
DURATION_S = 1800.0
NAMESPACE = "inference"
POLICY = "llama-8b"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # what the per-policy rule group filters on
SIM_MODEL = "llama-3-8b"  # the simulator's catalog name for the same model
MODEL_TRAINED_S = 600.0
CAPACITY_RPS = {"h100": 6.0, "l40s": 2.0}  # per replica, within the SLO
COST_PER_GPU_HOUR = {"h100": 4.18, "l40s": 1.91}  # the simulator catalog's prices
PREDICTOR_JOB = "sloscaler-predictor"  # the ServiceMonitor's job: the Service's name
PREDICTOR_NAMESPACE = "sloscaler-system"
POSTED_PER_SCRAPE = 40  # requests the gateway posts to the predictor service per 15 s
WINDOWS_FROM_S = 300.0  # the stand-in Prometheus has no windows before this

SCENARIO: dict[str, Any] = {
    "name": "dashboards",
    "seed": 5,
    "trace": {
        "generate": {
            "kind": "step",
            # light, idle, a burst past what 3 H100 + 2 L40S replicas serve (3×6 + 2×2 rps),
            # settle, fall away
            "stages": [[300, 3], [420, 0], [300, 12], [300, 26], [300, 8], [180, 2]],
            "lengths": {"mean_input_tokens": 1024, "mean_output_tokens": 256},
            "sheddable_fraction": 0.3,
        }
    },
    "slo": {"ttft_ms": 500, "tpot_ms": 50, "attainment": 0.99},
    "pools": [
        {
            "name": name,
            "model": SIM_MODEL,
            "role": "aggregated",
            "accelerator": name,
            "gpus": 1,
            "replicas": 1,
            "min_replicas": 0,
            "max_replicas": top,
            "engine": {"max_model_len": 8192},
            "startup": {"container_start_s": 20, "load_gbps": 2.0},
        }
        for name, top in (("h100", 3), ("l40s", 2))
    ],
    "gateway": {"scorer": "least-load", "queue_timeout_s": 120},
    "policy": {
        "name": "slo",
        "params": {
            "scale_to_zero": ["h100", "l40s"],
            "idle_before_zero_s": 120,
            "scale_down_window_s": 120,
        },
    },
    "inventory": {"h100": 3, "l40s": 2},
}


@dataclass
class AnalyticCapacity(ProfileCapacityModel):
    """The control loop's capacity model answered by :class:`FixedLatencyModel` (no profiling)."""

    fixed: FixedLatencyModel = field(default_factory=lambda: FixedLatencyModel(CAPACITY_RPS))

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        return self.fixed.capacity(pool, mix, slo)

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        return self.fixed.predict(pool, mix, rps_per_replica)

    def observe(self, pool: PoolSnapshot, mix: DemandMix, now: float | None = None) -> None:
        return None

    def observe_requests(self, model: str, requests: Iterable[tuple[int, int]], now: float) -> None:
        return None


# --- sources for the OpenMetrics writer ---------------------------------------------------------


def _relabel(labels: LabelTuple, changes: Mapping[str, str]) -> LabelTuple:
    """``labels`` with ``changes`` added or replacing values, sorted by name."""
    return tuple(sorted({**dict(labels), **changes}.items()))


@dataclass(frozen=True)
class _RelabelledSnapshot:
    inner: Any
    changes: Mapping[str, str]
    cache: dict[int, tuple[object, tuple[tuple[str, LabelTuple], ...]]]

    @property
    def created_s(self) -> float:
        return float(self.inner.created_s)

    @property
    def identity(self) -> LabelTuple:
        return _relabel(self.inner.identity, self.changes)

    def collect(self) -> list[FamilySamples]:
        out = []
        for family, groups in self.inner.collect():
            new_groups = []
            for group in groups:
                hit = self.cache.get(id(group.keys))
                if hit is None or hit[0] is not group.keys:
                    keys = tuple((name, _relabel(lb, self.changes)) for name, lb in group.keys)
                    hit = (group.keys, keys)
                    self.cache[id(group.keys)] = hit
                new_groups.append(
                    SeriesGroup(_relabel(group.labels, self.changes), hit[1], group.values)
                )
            out.append(FamilySamples(family, new_groups))
        return out


@dataclass
class Relabelled:
    """A metrics source with labels added or replaced, as a scrape's relabelling does."""

    source: MetricsSource
    changes: Mapping[str, str]
    _cache: dict[int, tuple[object, tuple[tuple[str, LabelTuple], ...]]] = field(
        default_factory=dict
    )

    def snapshot(self) -> _RelabelledSnapshot:
        return _RelabelledSnapshot(self.source.snapshot(), self.changes, self._cache)


@dataclass(frozen=True)
class _RegistrySnapshot:
    families: list[FamilySamples]

    @property
    def created_s(self) -> float:
        return 0.0

    @property
    def identity(self) -> LabelTuple:
        return ()

    def collect(self) -> list[FamilySamples]:
        return self.families


_TYPES: dict[str, MetricType] = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}


@dataclass
class RegistrySource:
    """A prometheus_client registry as a metrics source (its ``_created`` samples left out)."""

    registry: CollectorRegistry

    def snapshot(self) -> _RegistrySnapshot:
        families = []
        for metric in self.registry.collect():
            kind = _TYPES.get(metric.type)
            if kind is None:
                continue
            series: dict[LabelTuple, list[tuple[tuple[str, LabelTuple], float]]] = {}
            for s in metric.samples:
                if s.name.endswith("_created"):
                    continue
                base = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(base, []).append(
                    ((s.name, tuple(sorted(s.labels.items()))), s.value)
                )
            family = MetricFamily(metric.name, kind, metric.documentation, False)
            groups = [
                SeriesGroup(labels, tuple(k for k, _ in rows), tuple(v for _, v in rows))
                for labels, rows in series.items()
            ]
            if groups:
                families.append(FamilySamples(family, groups))
        return _RegistrySnapshot(families)


# --- the predictor service -------------------------------------------------------------------


def _posted_requests(n: int) -> list[TrainingEntry]:
    """``n`` synthetic requests with their latencies, as the gateway posts them, half on each
    of the run's accelerators (the generator's H100 and L40S profiles)."""
    profiles = (SYNTHETIC_ACCELERATORS[0], SYNTHETIC_ACCELERATORS[2])
    accelerators = tuple(
        dataclasses.replace(a, name=name) for a, name in zip(profiles, CAPACITY_RPS, strict=True)
    )
    s = synthetic_samples(n, seed=3, accelerators=accelerators)
    values = {name: s.features.values[name].tolist() for name in NUMERIC_FEATURES}
    fractions = {"kv_cache_percentage", "prefix_cache_score"}
    return [
        TrainingEntry(
            **{k: v[i] if k in fractions else round(v[i]) for k, v in values.items()},
            accelerator=s.features.accelerator[i],
            actual_ttft_ms=float(s.actual_ttft_ms[i]),
            actual_tpot_ms=float(s.actual_tpot_ms[i]),
        )
        for i in range(n)
    ]


def _windows(per_accelerator: int) -> WindowDataset:
    """Toy windows of both accelerators' pods: an M/M/1 prefill queue saturating at the
    accelerator's rate (H100 30 req/s, L40S 10 req/s)."""
    rng = np.random.default_rng(4)
    n = per_accelerator
    pods: list[str] = []
    accelerators: list[str] = []
    ends, ttfts, itls = [], [], []
    features: dict[str, list[np.ndarray]] = {f.value: [] for f in WINDOW_FEATURES}
    for name, saturation in (("h100", 30.0), ("l40s", 10.0)):
        rate = rng.uniform(0.05, 0.95, n) * saturation
        isl, osl = rng.uniform(800, 1200, n), rng.uniform(150, 250, n)
        rho = np.minimum(rate / (saturation * 1000.0 / isl), 0.98)
        ttft = 0.03 + np.log(10.0) * isl / (saturation * 1000.0) / (1 - rho)
        itl = 0.008 * (1 + 1.5 * rho)
        running = rate * (ttft + osl * itl)
        columns = window_features(
            rate, isl, osl, running=running, waiting=rho**2 / (1 - rho), kv_tokens=isl,
            prefix=np.zeros(n),
        )  # fmt: skip
        pods += [f"{name}-{i % 2}" for i in range(n)]
        accelerators += [name] * n
        ends.append(np.arange(n, dtype=np.float64) * SCRAPE_S)
        for key, values in columns.items():
            features[key].append(values)
        ttfts.append(ttft * rng.lognormal(0, 0.05, n))
        itls.append(itl * rng.lognormal(0, 0.03, n))
    return WindowDataset(
        pod=tuple(pods),
        accelerator=tuple(accelerators),
        role=("aggregated",) * len(pods),
        window_end_s=np.concatenate(ends),
        features={k: np.concatenate(v) for k, v in features.items()},
        ttft_s=np.concatenate(ttfts),
        itl_s=np.concatenate(itls),
        window_s=60.0,
    )


@dataclass
class _WindowSource:
    """The predictor service's window source: no windows before :data:`WINDOWS_FROM_S`."""

    clock: FixedClock
    data: WindowDataset
    queries_sent: int = 0

    def fetch(self, start_s: float, end_s: float) -> WindowDataset:
        self.queries_sent += 14
        if self.clock.now() < T0 + WINDOWS_FROM_S:
            return self.data.take(self.data.ttft_s < 0)
        return self.data


@dataclass
class PredictorFeed:
    """A predictor service fed as the gateway and its own cadences feed it, on the run's clock."""

    service: PredictorService
    clock: FixedClock
    requests: list[TrainingEntry]
    posted: int = 0

    @classmethod
    def start(cls, windows_dir: Path) -> PredictorFeed:
        clock = FixedClock(T0)
        config = ServiceConfig(
            retrain=RetrainPolicy(interval_s=600.0, min_interval_s=60.0, min_new_samples=400),
            training=TrainingConfig(
                model=ModelConfig(boosting=BoostingParams(location_trees=20, mean_trees=20))
            ),
            window_training=WindowTrainingPolicy(every_s=900.0, lookback_s=1800.0),
            window_fit=WindowModelConfig(min_rows=50, min_load_levels=5, state_trees=20),
        )
        service = PredictorService(
            config,
            window_registry=WindowModelRegistry(windows_dir),
            window_source=_WindowSource(clock, _windows(80)),
            clock=clock,
        )
        n = POSTED_PER_SCRAPE * (int(DURATION_S / SCRAPE_S) + 2)
        return cls(service, clock, _posted_requests(n))

    def __call__(self, t: float) -> None:
        self.clock.t = T0 + t
        batch = self.requests[self.posted : self.posted + POSTED_PER_SCRAPE]
        self.posted += len(batch)
        self.service.predict(batch)
        self.service.add_training(batch)
        self.service.maybe_retrain()
        self.service.maybe_train_windows()


# --- the run -----------------------------------------------------------------------------------


def policy_spec(scenario: Scenario) -> SLOPolicySpec:
    """The SLOPolicy a cluster would hold for the scenario's pools."""
    return SLOPolicySpec.model_validate(
        {
            "model": MODEL,
            "objectives": {
                "ttftP90Ms": scenario.slo.ttft_ms,
                "tpotP90Ms": scenario.slo.tpot_ms,
                "attainment": scenario.slo.attainment,
            },
            "pools": [
                {
                    "name": p.name,
                    "role": p.role,
                    "accelerator": p.accelerator,
                    "gpusPerReplica": p.gpus,
                    "costPerGpuHour": p.price_per_gpu_hour or COST_PER_GPU_HOUR[p.accelerator],
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": f"llama-8b-{p.name}",
                    },
                    "minReplicas": p.min_replicas,
                    "maxReplicas": p.max_replicas,
                    "scaleToZero": True,
                    "startupSeconds": 40,
                }
                for p in scenario.pools
            ],
        }
    )


def _share_under(h: HistogramSnapshot, x: float) -> tuple[float, int]:
    """(observations at or under ``x`` by linear interpolation in its bucket, all observations)."""
    cumulative = h.cumulative()
    below, start = 0.0, 0.0
    for bound, cum in zip(h.bounds, cumulative, strict=False):
        if x <= bound:
            width = bound - start
            inside = cum - below
            return below + (inside * (x - start) / width if width > 0 else inside), h.count
        below, start = float(cum), bound
    return float(cumulative[-1]), h.count


@dataclass
class _Recorder:
    """The sample hook: feeds the controller's metrics and writes every source."""

    writer: OpenMetricsWriter
    loop: ControlLoop
    spec: SLOPolicySpec
    ref: PolicyRef
    metrics: ControllerMetrics
    registry: CollectorRegistry
    predictor: PredictorFeed
    relabelled: dict[int, Relabelled] = field(default_factory=dict)
    previous_ttft: dict[str, HistogramSnapshot] = field(default_factory=dict)
    fed: int = 0  # decisions of loop.history already fed to the metrics

    def source(self, m: Any, changes: dict[str, str]) -> Relabelled:
        wrapped = self.relabelled.get(id(m))
        if wrapped is None or wrapped.source is not m:
            wrapped = Relabelled(m, changes)
            self.relabelled[id(m)] = wrapped
        return wrapped

    def coverage(self, cluster: Cluster, predicted: Mapping[str, float]) -> float | None:
        under, total = 0.0, 0
        for pool in cluster.pools:
            target = predicted.get(pool.spec.name)
            for pod in pool.pods:
                now = pod.engine.metrics.time_to_first_token.snapshot()
                before = self.previous_ttft.get(pod.name)
                self.previous_ttft[pod.name] = now
                if before is None or target is None or not math.isfinite(target):
                    continue
                u, n = _share_under(now.since(before), target)
                under, total = under + u, total + n
        return under / total if total else None

    def __call__(self, t: float, cluster: Cluster) -> None:
        ready = {p.name: p.ready for p in cluster.view().pools}
        predicted: dict[str, float] = {}
        for _, decision in self.loop.history[self.fed :]:
            for d in decision.pools:
                self.metrics.pool_decision(self.ref, self.spec, d, ready.get(d.pool, 0))
            self.metrics.tick(0.004 + 0.002 * len(decision.pools), 1)  # a plausible duration
        self.fed = len(self.loop.history)
        if self.loop.history:
            for d in self.loop.history[-1][1].pools:
                if d.predicted_ttft_p90_s is not None:
                    predicted[d.pool] = d.predicted_ttft_p90_s
        coverage = self.coverage(cluster, predicted)
        if t < MODEL_TRAINED_S:
            status = ModelStatus(False, "AnalyticFallback", "no learned model yet")
        else:
            status = ModelStatus(True, "ModelTrained", "learned", t - MODEL_TRAINED_S, coverage)
        self.metrics.model(self.ref, status)
        sources: list[MetricsSource] = []
        targets = {p.name: p.scale_target_ref.name for p in self.spec.pools}
        for pool in cluster.pools:
            changes = {"namespace": NAMESPACE, "model_name": MODEL, "pool": targets[pool.spec.name]}
            sources.extend(self.source(pod.engine.metrics, changes) for pod in pool.pods)
        gateway = {"namespace": NAMESPACE, "model_name": MODEL, "target_model_name": MODEL}
        sources.extend(self.source(g, gateway) for g in cluster.gateway_metrics.values())
        sources.append(RegistrySource(self.registry))
        self.predictor(t)
        scrape = {"job": PREDICTOR_JOB, "namespace": PREDICTOR_NAMESPACE}
        sources.append(Relabelled(RegistrySource(self.predictor.service.metrics_registry), scrape))
        self.writer.write(sources, T0 + t)


@dataclass(frozen=True)
class Recording:
    """What the run left: the OpenMetrics file and the span it covers (Unix seconds)."""

    path: Path
    start_s: float
    end_s: float
    pools: tuple[str, ...]


def record_closed_loop(path: Path) -> Recording:
    """Run :data:`SCENARIO` under the SLO control loop and write its metrics to ``path``."""
    scenario = Scenario.model_validate(SCENARIO)
    params = slo_params(scenario)
    config = policy_config(scenario, params)
    loop = ControlLoop(config, AnalyticCapacity({}))
    objectives = {m: (s.ttft_s, s.tpot_s) for m, s in config.slo.items()}
    controller = SimulatedController(
        loop,
        SimulatorMetricsSource(params.metrics_window_s, objectives),
        tick_interval_s=params.tick_s,
    )
    spec = policy_spec(scenario)
    ref = PolicyRef(
        NAMESPACE,
        POLICY,
        MODEL,
        tuple(
            PoolRef(
                NAMESPACE,
                POLICY,
                p.name,
                MODEL,
                p.role,
                p.accelerator,
                "Deployment",
                p.scale_target_ref.name,
                f"app={p.scale_target_ref.name}",
            )
            for p in spec.pools
        ),
    )
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.set_leader(True)
    last = 0.0
    with (
        tempfile.TemporaryDirectory() as windows_dir,
        OpenMetricsWriter(path) as writer,
    ):
        feed = PredictorFeed.start(Path(windows_dir))
        recorder = _Recorder(writer, loop, spec, ref, metrics, registry, feed)

        def hook(t: float, cluster: Cluster) -> None:
            nonlocal last
            recorder(t, cluster)
            last = t

        run_scenario(scenario, controller=controller, sample_hooks=((SCRAPE_S, hook),))
    return Recording(path, T0, T0 + last, tuple(p.name for p in spec.pools))


__all__ = ["T0", "AnalyticCapacity", "Recording", "record_closed_loop"]
