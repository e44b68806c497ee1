"""The controller's own ``/metrics``, ``/healthz`` and ``/readyz``.

Why: operators must see what the controller decided and why without reading logs, dashboards
are built on these names only (``docs/metrics.md`` documents each), and prometheus-adapter or
KEDA users can scale on ``sloscaler_desired_replicas`` from here instead of the external metrics
API. Every metric lives in an injected ``CollectorRegistry`` (tests get a fresh one); per-pool
series carry ``namespace, policy, pool, accelerator, role`` and disappear with their policy.

``sloscaler_decision_reason`` is an enum in the Prometheus sense: one series per
:class:`~policies.reasons.Reason` value, 1 for the pool's current reason and 0 for the others,
so ``sloscaler_decision_reason == 1`` shows the reason and ``changes()`` counts flips.

Cost and churn for the dashboards: ``sloscaler_pool_gpus`` and ``sloscaler_pool_cost_per_hour``
follow the pool's current replicas (2 replicas × 4 GPUs at 2.5 per GPU-hour → 8 GPUs, 20 per
hour); ``sloscaler_scale_events_total{direction}`` counts changes of the desired replicas from one
decision to the next; ``sloscaler_policy_info{model}`` joins a policy to the ``model_name`` of its
vLLM and gateway series, ``sloscaler_pool_info{target}`` a pool to its vLLM series (whose ``pool``
label is the workload's name, set by the PodMonitor).

Health: ``/healthz`` fails when the main loop has not gone round for ``stale_after_s`` (a hung
API call, a deadlock); ``/readyz`` additionally needs one successful reconciliation (leader) or
Lease round (standby) since start.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.background_server import BackgroundServer
from autoscaler.clock import Clock
from autoscaler.crd import SLOPolicySpec
from autoscaler.k8s.controller import ControllerMetricsSink
from autoscaler.k8s.sources import ModelStatus, PolicyRef
from autoscaler.predictor_capacity import PredictorFault
from autoscaler.prometheus_source import MetricsFault
from policies.reasons import Reason
from policies.types import PoolDecision

POOL_LABELS = ("namespace", "policy", "pool", "accelerator", "role")
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ERROR_KINDS = (
    "transient",
    "conflict",
    "terminal",
    "not_found",
    "invalid",
    "forbidden",
    "metrics",
    "invalid_policy",
    "internal",
)


class ControllerMetrics(ControllerMetricsSink):
    """Prometheus metrics of the controller (implements the controller's metrics sink)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry

        def pool_gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, POOL_LABELS, registry=r)

        self.desired = pool_gauge(
            "sloscaler_desired_replicas", "Replicas the controller wants for the pool"
        )
        self.current = pool_gauge(
            "sloscaler_current_replicas", "spec.replicas of the pool's scale target"
        )
        self.ready = pool_gauge("sloscaler_ready_replicas", "Ready pods of the pool")
        self.recommended = pool_gauge(
            "sloscaler_recommended_replicas", "Recommendation before normalization"
        )
        self.pred_ttft = pool_gauge(
            "sloscaler_predicted_ttft_seconds", "Predicted p90 TTFT at the desired replicas"
        )
        self.pred_tpot = pool_gauge(
            "sloscaler_predicted_tpot_seconds", "Predicted p90 TPOT at the desired replicas"
        )
        self.slo_ttft = pool_gauge("sloscaler_slo_ttft_seconds", "p90 TTFT objective")
        self.slo_tpot = pool_gauge("sloscaler_slo_tpot_seconds", "p90 TPOT objective")
        self.capacity = pool_gauge(
            "sloscaler_capacity_rps", "Requests per second one replica serves within the SLO"
        )
        self.demand = pool_gauge(
            "sloscaler_demand_rps", "Upper forecast of the model's demand, requests per second"
        )
        self.reason = Gauge(
            "sloscaler_decision_reason",
            "1 for the reason of the pool's current decision, 0 for every other reason",
            (*POOL_LABELS, "reason"),
            registry=r,
        )
        self.pool_gpus = pool_gauge(
            "sloscaler_pool_gpus",
            "GPUs held by the pool's current replicas (current × gpusPerReplica)",
        )
        self.pool_cost = pool_gauge(
            "sloscaler_pool_cost_per_hour",
            "Cost per hour of the pool's current replicas (GPUs × costPerGpuHour)",
        )
        self.startup = pool_gauge(
            "sloscaler_startup_seconds", "Start-up time the controller plans with for a new replica"
        )
        self.scale_events = Counter(
            "sloscaler_scale_events",
            "Changes of the pool's desired replicas, by direction (up or down)",
            (*POOL_LABELS, "direction"),
            registry=r,
        )
        self.pool_info = Gauge(
            "sloscaler_pool_info",
            "1 for every pool, labelled with its workload (the pool label of its vLLM series)",
            (*POOL_LABELS, "target"),
            registry=r,
        )
        self.policy_info = Gauge(
            "sloscaler_policy_info",
            "1 for every SLOPolicy, labelled with the model it serves",
            ("namespace", "policy", "model"),
            registry=r,
        )
        self.model_ready = pool_gauge(
            "sloscaler_model_ready", "1 when a learned latency model serves the pool, else 0"
        )
        self.model_age = pool_gauge(
            "sloscaler_model_age_seconds", "Age of the latency model serving the pool"
        )
        self.model_coverage = pool_gauge(
            "sloscaler_model_coverage_ratio",
            "Share of observed requests under the model's predicted p90 (target 0.9)",
        )
        self.tick_duration = Histogram(
            "sloscaler_tick_duration_seconds",
            "Duration of one reconciliation of every SLOPolicy",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.policies = Gauge("sloscaler_policies", "SLOPolicies seen by the last tick", registry=r)
        self.errors = Counter("sloscaler_errors", "Errors by kind", ("kind",), registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        self.metrics_source_errors = Counter(
            "sloscaler_metrics_source_errors",
            "Ticks, pool windows and model demands the metrics source had no data for, by reason",
            ("reason",),
            registry=r,
        )
        for fault in MetricsFault:
            self.metrics_source_errors.labels(fault.value)
        self.capacity_source_errors = Counter(
            "sloscaler_capacity_source_errors",
            "Predictor capacity requests without a usable answer (the --capacity table answered), "
            "by reason",
            ("reason",),
            registry=r,
        )
        for predictor_fault in PredictorFault:
            self.capacity_source_errors.labels(predictor_fault.value)
        self.leader = Gauge(
            "sloscaler_leader", "1 while this replica holds the leader Lease", registry=r
        )
        self._series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._desired: dict[tuple[str, ...], int] = {}  # last desired replicas per pool
        self._targets: dict[tuple[str, ...], str] = {}  # the workload of each pool
        self._models: dict[tuple[str, str], str] = {}  # the model of each policy
        self._lock = threading.Lock()

    def _labels(self, policy: PolicyRef, pool: str, accelerator: str, role: str) -> tuple[str, ...]:
        labels = (policy.namespace, policy.name, pool, accelerator, role)
        with self._lock:
            self._series.setdefault((policy.namespace, policy.name), set()).add(labels)
        return labels

    def pool_decision(
        self, policy: PolicyRef, spec: SLOPolicySpec, decision: PoolDecision, ready: int
    ) -> None:
        labels = self._labels(policy, decision.pool, decision.accelerator, decision.role)
        self.desired.labels(*labels).set(decision.replicas)
        self.current.labels(*labels).set(decision.current)
        self.ready.labels(*labels).set(ready)
        self.recommended.labels(*labels).set(decision.raw)
        self.slo_ttft.labels(*labels).set(decision.slo_ttft_s)
        self.slo_tpot.labels(*labels).set(decision.slo_tpot_s)
        for gauge, value in (
            (self.pred_ttft, decision.predicted_ttft_p90_s),
            (self.pred_tpot, decision.predicted_tpot_p90_s),
            (self.capacity, decision.capacity_rps),
            (self.demand, decision.demand_rps),
        ):
            gauge.labels(*labels).set(math.nan if value is None else value)
        for reason in Reason:
            self.reason.labels(*labels, reason.value).set(1 if reason is decision.reason else 0)
        pool = next((p for p in spec.pools if p.name == decision.pool), None)
        if pool is not None:
            gpus = decision.current * pool.gpus_per_replica
            self.pool_gpus.labels(*labels).set(gpus)
            self.pool_cost.labels(*labels).set(gpus * pool.cost_per_gpu_hour)
            self.startup.labels(*labels).set(pool.startup_seconds)
            with self._lock:
                old_target = self._targets.get(labels)
                self._targets[labels] = pool.scale_target_ref.name
            if old_target is not None and old_target != pool.scale_target_ref.name:
                with contextlib.suppress(KeyError):
                    self.pool_info.remove(*labels, old_target)
            self.pool_info.labels(*labels, pool.scale_target_ref.name).set(1)
        up = self.scale_events.labels(*labels, "up")
        down = self.scale_events.labels(*labels, "down")
        with self._lock:
            previous = self._desired.get(labels)
            self._desired[labels] = decision.replicas
            old_model = self._models.get(policy.key)
            self._models[policy.key] = policy.model
        if old_model is not None and old_model != policy.model:
            with contextlib.suppress(KeyError):
                self.policy_info.remove(policy.namespace, policy.name, old_model)
        if previous is not None and decision.replicas > previous:
            up.inc()
        elif previous is not None and decision.replicas < previous:
            down.inc()
        self.policy_info.labels(policy.namespace, policy.name, policy.model).set(1)

    def model(self, policy: PolicyRef, status: ModelStatus) -> None:
        for p in policy.pools:
            labels = self._labels(policy, p.pool, p.accelerator, p.role)
            self.model_ready.labels(*labels).set(1 if status.ready else 0)
            self.model_age.labels(*labels).set(math.nan if status.age_s is None else status.age_s)
            self.model_coverage.labels(*labels).set(
                math.nan if status.coverage is None else status.coverage
            )

    def forget(self, namespace: str, policy: str) -> None:
        with self._lock:
            series = self._series.pop((namespace, policy), set())
            model = self._models.pop((namespace, policy), None)
            targets = {labels: self._targets.pop(labels, None) for labels in series}
            for labels in series:
                self._desired.pop(labels, None)
        if model is not None:
            with contextlib.suppress(KeyError):
                self.policy_info.remove(namespace, policy, model)
        gauges = (
            self.desired,
            self.current,
            self.ready,
            self.recommended,
            self.pred_ttft,
            self.pred_tpot,
            self.slo_ttft,
            self.slo_tpot,
            self.capacity,
            self.demand,
            self.model_ready,
            self.model_age,
            self.model_coverage,
            self.pool_gpus,
            self.pool_cost,
            self.startup,
        )
        for labels in series:
            for g in gauges:
                with contextlib.suppress(KeyError):
                    g.remove(*labels)
            for reason in Reason:
                with contextlib.suppress(KeyError):
                    self.reason.remove(*labels, reason.value)
            for direction in ("up", "down"):
                with contextlib.suppress(KeyError):
                    self.scale_events.remove(*labels, direction)
            target = targets.get(labels)
            if target is not None:
                with contextlib.suppress(KeyError):
                    self.pool_info.remove(*labels, target)

    def metrics_source_fault(self, reason: MetricsFault) -> None:
        """One tick, pool window or model demand without data (the Prometheus source's
        ``on_fault``)."""
        self.metrics_source_errors.labels(reason.value).inc()

    def capacity_source_fault(self, reason: PredictorFault) -> None:
        """One predictor request without a usable answer (the predictor source's
        ``on_fault``)."""
        self.capacity_source_errors.labels(reason.value).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def tick(self, seconds: float, policies: int) -> None:
        self.tick_duration.observe(seconds)
        self.policies.set(policies)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)


@dataclass
class Health:
    """Liveness and readiness from the main loop's heartbeats (clock seconds)."""

    clock: Clock
    stale_after_s: float = 120.0
    last_beat: float | None = None
    ready: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self, ok: bool = True) -> None:
        with self._lock:
            self.last_beat = self.clock.now()
            self.ready = self.ready or ok

    def alive(self) -> bool:
        with self._lock:
            beat = self.last_beat
        return beat is None or self.clock.now() - beat <= self.stale_after_s

    def is_ready(self) -> bool:
        return self.ready and self.alive()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.server.health.alive()
            self._send(200 if ok else 503, b"ok\n" if ok else b"main loop stalled\n")
        elif path == "/readyz":
            ok = self.server.health.is_ready()
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
        else:
            self._send(404, b"not found\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: Health


class MetricsServer(BackgroundServer):
    """Plain HTTP on its own port (``/metrics`` is scraped by Prometheus, the probes by the
    kubelet)."""

    def __init__(
        self, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0", port: int = 8080
    ) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.registry = registry
        self._httpd.health = health
        super().__init__()
