"""The predictor over HTTP, wire-compatible with llm-d's latency predictor.

Why this module exists: the llm-d gateway (its predicted-latency scorer and its training-sample
posts) must be able to use this service as a drop-in sidecar, unchanged — same paths, same JSON
field names, same semantics — while it gains what llm-d's lacks: per-accelerator models
(``accelerator`` on requests), calibrated quantiles, ``/v1/models`` with held-out metrics,
explicit not-ready answers, drift-triggered retraining, and the capacity of one replica at an
SLO for the planner.

Endpoints (llm-d's unless marked *ours*):

=============================== ============================================================
``POST /predict``               one request → ``ttft_ms``, ``tpot_ms`` at the serving quantile
``POST /predict/bulk``          ``{"requests": [...]}`` (1–10,000; 413 above): a bad or
                                unpredictable item gives ``null`` and an ``errors`` entry
``POST /predict/bulk/strict``   the same, all or nothing: any invalid item → 422, any item
                                without a ready model → 503
``POST /add_training_data_bulk`` ``{"entries": [...]}`` → 202; samples enter the buffer, are
                                scored against the serving model (drift), and may trigger
                                retraining (cadence or drift) in the background
``POST /reload``                load the newest valid artifacts (request-level and window)
``POST /retrain``               *ours*: retrain on the buffer now (reason ``manual``)
``POST /capacity``              *ours*: per-replica request rate at an SLO, from the window
                                model (``learned``) or the analytic fallback (``fallback``)
``GET /healthz``, ``/readyz``   liveness; readiness = a model can predict (503 otherwise)
``GET /status``                 llm-d's status fields plus version, segments, buffer,
                                retraining (cadence, drift findings, last run), window models
                                (and their training from Prometheus)
``GET /metrics``                Prometheus text from the service's own registry
``GET /v1/models``              *ours*: every (accelerator, role) model with held-out metrics
=============================== ============================================================

A malformed payload gets 422 naming the field (FastAPI's ``detail[].loc``), never a 500. A valid
request that no model can answer gets 503 with the ``NotReady`` reason. A training entry's
``actual_ttft_ms``/``actual_tpot_ms`` of 0 (or null) means "not measured", as the gateway posts
TTFT before any TPOT is known.

Given a window source (Prometheus) and a window registry, the service also trains window models
on a cadence (:mod:`predictor.window_training`) in a background thread that the app starts with
its lifespan: the first run at start-up, without holding up readiness; a failed run is logged,
counted and shown in ``/status`` while the model already loaded keeps answering.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import structlog
from fastapi import BackgroundTasks, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from predictor.buffer import TrainingBuffer
from predictor.calibration import ADAPTIVE_STEP, AdaptiveOffset
from predictor.capacity import AcceleratorProfile, Source, capacity_at_slo
from predictor.clock import Clock, WallClock
from predictor.drift import DriftMonitor, DriftPolicy
from predictor.features import NUMERIC_FEATURES, FeatureColumns, FloatArray, PodType, Target
from predictor.metrics import HeldOutMetrics
from predictor.models import LatencyModel, ServingBatch
from predictor.outcomes import NotReady, NotReadyReason
from predictor.registry import Artifact, ArtifactError, ModelRegistry
from predictor.samples import RequestSamples
from predictor.training import (
    RetrainPolicy,
    RetrainReason,
    RetrainState,
    TrainingConfig,
    TrainingResult,
    retrain_decision,
    train,
)
from predictor.window_models import WindowCapacity, WindowLatencyModel, WindowModelConfig
from predictor.window_models import capacity_at_slo as window_capacity_at_slo
from predictor.window_registry import WindowArtifact, WindowModelRegistry
from predictor.window_training import (
    WindowSource,
    WindowTrainingPolicy,
    WindowTrainingReport,
    WindowTrainingResult,
    WindowTrainingState,
    next_due_at,
    train_windows,
    training_range,
    window_training_due,
)

log = structlog.get_logger("predictor.service")

MAX_BULK = 10_000

NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class PredictionRequest(BaseModel):
    """One prediction request: llm-d's fields, plus the optional ``accelerator``."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    kv_cache_percentage: Fraction
    input_token_length: NonNegInt
    num_request_waiting: NonNegInt
    num_request_running: NonNegInt
    num_tokens_generated: NonNegInt
    prefix_cache_score: Fraction
    pod_type: Literal["", "prefill", "decode"] = ""
    prefill_tokens_in_flight: NonNegInt = 0
    decode_tokens_in_flight: NonNegInt = 0
    encoder_matched_size: NonNegInt = 0
    encoder_input_size: NonNegInt = 0
    accelerator: str | None = None


class TrainingEntry(PredictionRequest):
    """One observed request: the request fields plus what actually happened."""

    actual_ttft_ms: Annotated[float, Field(ge=0.0)] | None = None
    actual_tpot_ms: Annotated[float, Field(ge=0.0)] | None = None
    timestamp: float | datetime | None = None


class BulkPredictionRequest(BaseModel):
    """``{"requests": [...]}``; items are validated one by one (see the endpoints)."""

    requests: list[Any]


class TrainingBatch(BaseModel):
    """``{"entries": [...]}``."""

    entries: list[TrainingEntry]


class ProfilePayload(BaseModel):
    """An accelerator's analytic profile (:class:`predictor.capacity.AcceleratorProfile`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    prefill_tokens_per_s: Annotated[float, Field(gt=0)]
    itl_base_ms: Annotated[float, Field(gt=0)]
    itl_per_seq_ms: Annotated[float, Field(ge=0)]
    kv_capacity_tokens: Annotated[float, Field(gt=0)]
    max_num_seqs: Annotated[int, Field(ge=1)] = 256
    ttft_overhead_ms: Annotated[float, Field(ge=0)] = 0.0

    def profile(self, name: str) -> AcceleratorProfile:
        return AcceleratorProfile(name=name, **self.model_dump())


class CapacityRequest(BaseModel):
    """``POST /capacity``: one replica of (accelerator, role) serving a request mix at an SLO.

    ``slo_tpot_ms`` bounds the p90 time per output token (the window models' inter-token
    latency); ``quantile`` picks which quantile of the window p90 must meet the SLO (default:
    the window model's serving quantile, the median window).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    accelerator: Annotated[str, Field(min_length=1)]
    role: Literal["aggregated", "prefill", "decode"] = "aggregated"
    isl: Annotated[float, Field(ge=0)]
    osl: Annotated[float, Field(ge=1)]
    prefix_hit: Fraction = 0.0
    slo_ttft_ms: Annotated[float, Field(gt=0)]
    slo_tpot_ms: Annotated[float, Field(gt=0)]
    quantile: Annotated[float, Field(gt=0, lt=1)] | None = None
    profile: ProfilePayload | None = None


_REQUEST = TypeAdapter(PredictionRequest)


@dataclass(frozen=True)
class ServiceConfig:
    """Service knobs."""

    max_bulk: int = MAX_BULK
    max_training_entries: int = 100_000
    default_accelerator: str | None = None
    train_in_process: bool = True
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    buffer_per_bucket: int = 2_000
    keep_versions: int = 10
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    profiles: Mapping[str, AcceleratorProfile] = field(default_factory=dict)
    window_training: WindowTrainingPolicy = field(default_factory=WindowTrainingPolicy)
    window_fit: WindowModelConfig = field(default_factory=WindowModelConfig)
    #: longest wait of the background thread between two looks at the (injected) clock (s)
    window_poll_s: float = 60.0
    #: adaptive conformal step γ (log units per posted actual) of the online offset per (target,
    #: accelerator) on top of the split-conformal ones; 0 turns it off (``predictor.calibration``)
    adaptive_step: float = ADAPTIVE_STEP

    def __post_init__(self) -> None:
        if not 0.0 <= self.adaptive_step < 1.0:
            raise ValueError(f"adaptive_step must be in [0, 1), got {self.adaptive_step}")


def _columns(requests: Sequence[PredictionRequest], default_accelerator: str) -> FeatureColumns:
    n = len(requests)
    values = {
        name: np.fromiter((getattr(r, name) for r in requests), np.float64, n)
        for name in NUMERIC_FEATURES
    }
    codes = np.fromiter((PodType(r.pod_type).code for r in requests), np.int8, n)
    accs = tuple(r.accelerator or default_accelerator for r in requests)
    return FeatureColumns(values=values, pod_type=codes, accelerator=accs)


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def _adaptive_factors(
    adaptive: Mapping[tuple[Target, str], AdaptiveOffset],
    target: Target,
    accelerators: Sequence[str],
) -> FloatArray:
    """``e^offset`` per row: the adaptive conformal factor of the row's accelerator (1 if none)."""
    offsets = {
        a: adaptive[(target, a)].offset for a in set(accelerators) if (target, a) in adaptive
    }
    return np.exp(np.fromiter((offsets.get(a, 0.0) for a in accelerators), np.float64))


def _adapted(
    adaptive: Mapping[tuple[Target, str], AdaptiveOffset],
    served: ServingBatch,
    samples: RequestSamples,
    level: float,
    step: float,
) -> dict[tuple[Target, str], AdaptiveOffset]:
    """The adaptive offsets after ``samples``: each known actual is scored against the
    prediction served now (split-conformal and adaptive offset) and counts as one ACI step."""
    out = dict(adaptive)
    accs = np.asarray(samples.features.accelerator, dtype=object)
    for target, predicted in ((Target.TTFT, served.ttft_ms), (Target.TPOT, served.tpot_ms)):
        actual = samples.actual(target)
        bound = predicted * _adaptive_factors(adaptive, target, samples.features.accelerator)
        known = np.isfinite(actual) & np.isfinite(bound)
        for name in sorted(set(accs[known].tolist())):
            rows = known & (accs == name)
            state = out.get((target, name), AdaptiveOffset(level=level, step=step))
            misses = int(np.count_nonzero(actual[rows] > bound[rows]))
            out[(target, name)] = state.update(misses, int(rows.sum()))
    return out


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


class _StateCollector(Collector):
    """Reads the service's state at scrape time (model readiness, buffer, online error and
    drift, window models)."""

    def __init__(self, service: PredictorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        ready = GaugeMetricFamily(
            "sloscaler_predictor_model_ready", "1 when a model can predict, else 0"
        )
        ready.add_metric([], 1.0 if s.model is not None and s.model.is_ready else 0.0)
        yield ready
        info = GaugeMetricFamily(
            "sloscaler_predictor_model_info", "The serving model version", labels=["version"]
        )
        if s.version is not None:
            info.add_metric([s.version], 1.0)
        yield info
        rows = GaugeMetricFamily(
            "sloscaler_predictor_buffer_rows", "Training samples held", labels=["segment"]
        )
        with s.lock:
            stats = s.buffer.stats()
            monitor = s.monitor
            metrics = s.held_out
            windows = s.window_model
        for segment, count in stats.rows_by_segment.items():
            rows.add_metric([segment], float(count))
        yield rows
        online = GaugeMetricFamily(
            "sloscaler_predictor_online_coverage",
            "Recency-weighted fraction of new actuals at or below the predicted quantile",
            labels=["target", "accelerator", "quantile"],
        )
        relative = GaugeMetricFamily(
            "sloscaler_predictor_online_relative_pinball",
            "Recency-weighted pinball loss on new samples divided by their mean latency",
            labels=["target", "accelerator"],
        )
        for (target, acc), state in monitor.rolling.items():
            if state.coverage is not None:
                online.add_metric([target.value, acc, f"{monitor.quantile:g}"], state.coverage)
            if state.relative_pinball is not None:
                relative.add_metric([target.value, acc], state.relative_pinball)
        yield online
        yield relative
        drift = GaugeMetricFamily(
            "sloscaler_predictor_drift",
            "1 when new samples score the serving model worse than its held-out rows did",
            labels=["target", "accelerator"],
        )
        for finding in monitor.findings():
            drift.add_metric([finding.target.value, finding.accelerator], float(finding.drifted))
        yield drift
        adaptive_offset = GaugeMetricFamily(
            "sloscaler_predictor_adaptive_offset",
            "Adaptive conformal log offset on top of the split-conformal ones",
            labels=["target", "accelerator"],
        )
        adaptive_miss = GaugeMetricFamily(
            "sloscaler_predictor_adaptive_miss_rate",
            "Share of posted actuals above the served quantile since the model was installed",
            labels=["target", "accelerator"],
        )
        for (target, acc), aci in s.adaptive.items():
            adaptive_offset.add_metric([target.value, acc], aci.offset)
            if aci.miss_rate is not None:
                adaptive_miss.add_metric([target.value, acc], aci.miss_rate)
        yield adaptive_offset
        yield adaptive_miss
        window_ready = GaugeMetricFamily(
            "sloscaler_predictor_window_model_ready",
            "1 per (accelerator, role) whose window model answers capacity questions",
            labels=["accelerator", "role"],
        )
        if windows is not None:
            for (acc, role), seg in windows.segments.items():
                window_ready.add_metric([acc, role], 0.0 if isinstance(seg, NotReady) else 1.0)
        yield window_ready
        held = GaugeMetricFamily(
            "sloscaler_predictor_heldout",
            "Held-out metrics of the serving model",
            labels=["target", "accelerator", "metric"],
        )
        for m in metrics:
            for name in ("coverage_p90", "pinball_p90", "mape_mean", "r2_mean"):
                value = getattr(m, name)
                if math.isfinite(value):
                    held.add_metric([m.target.value, m.accelerator, name], value)
        yield held


class PredictorService:
    """The service's state and operations, independent of HTTP (the app is a thin layer)."""

    def __init__(
        self,
        config: ServiceConfig | None = None,
        *,
        registry: ModelRegistry | None = None,
        window_registry: WindowModelRegistry | None = None,
        window_source: WindowSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or ServiceConfig()
        self.registry = registry
        self.clock: Clock = clock or WallClock()
        self.lock = threading.Lock()
        self._train_lock = threading.Lock()
        self.model: LatencyModel | None = None
        self.version: str | None = None
        self.loaded_at: float | None = None
        self.held_out: tuple[HeldOutMetrics, ...] = ()
        self.buffer = TrainingBuffer(per_bucket=self.config.buffer_per_bucket)
        self.monitor = DriftMonitor.for_model(self._monitor_quantile(None), (), self.config.drift)
        self.retrain_state = RetrainState()
        self.last_retrain: dict[str, Any] | None = None
        self.retrain_counts: dict[RetrainReason, int] = {}
        self.window_registry = window_registry
        self.window_model: WindowLatencyModel | None = None
        self.window_version: str | None = None
        self.window_loaded_at: float | None = None
        self.window_source = window_source
        self.window_training_state = WindowTrainingState()
        self.window_training_counts: dict[WindowTrainingResult, int] = {}
        self.last_window_training: dict[str, Any] | None = None
        self._window_train_lock = threading.Lock()
        self._window_runs = threading.Condition()
        self._window_stop = threading.Event()
        self._window_thread: threading.Thread | None = None
        self.samples_added = 0
        #: adaptive conformal offsets by (target, accelerator) of the serving model
        self.adaptive: dict[tuple[Target, str], AdaptiveOffset] = {}
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sloscaler_predictor_http_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "code"],
            registry=self.metrics_registry,
        )
        self.latency = Histogram(
            "sloscaler_predictor_http_request_duration_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.metrics_registry,
        )
        self.predictions = Counter(
            "sloscaler_predictor_predictions",
            "Rows predicted, by outcome (ok or a NotReady reason)",
            ["outcome"],
            registry=self.metrics_registry,
        )
        self.samples_counter = Counter(
            "sloscaler_predictor_training_samples",
            "Training samples accepted",
            registry=self.metrics_registry,
        )
        self.retrains = Counter(
            "sloscaler_predictor_retrains",
            "Retrainings by trigger (first, cadence, drift, manual) and result",
            ["trigger", "result"],
            registry=self.metrics_registry,
        )
        self.capacity_answers = Counter(
            "sloscaler_predictor_capacity_answers",
            "POST /capacity answers by source (learned, fallback, not_ready)",
            ["source"],
            registry=self.metrics_registry,
        )
        self.window_trainings = Counter(
            "sloscaler_predictor_window_trainings",
            "Window-model trainings from Prometheus by result (published or why not)",
            ["result"],
            registry=self.metrics_registry,
        )
        self.rejected = Counter(
            "sloscaler_predictor_artifacts_rejected",
            "Artifacts that failed verification on load",
            registry=self.metrics_registry,
        )
        self.metrics_registry.register(_StateCollector(self))

    # ------------------------------------------------------------------ models

    @property
    def default_accelerator(self) -> str:
        if self.config.default_accelerator:
            return self.config.default_accelerator
        if self.model is not None and self.model.default_accelerator:
            return self.model.default_accelerator
        return ""

    def install(
        self, model: LatencyModel, version: str | None, metrics: Iterable[HeldOutMetrics]
    ) -> None:
        """Serve ``model`` from now on."""
        held_out = tuple(metrics)
        monitor = DriftMonitor.for_model(self._monitor_quantile(model), held_out, self.config.drift)
        with self.lock:
            self.model = model
            self.version = version
            self.held_out = held_out
            self.loaded_at = self.clock.now()
            self.monitor = monitor
            self.adaptive = {}  # new split-conformal offsets: the online one starts again
        log.info("model_installed", version=version, ready=model.is_ready)

    def _monitor_quantile(self, model: LatencyModel | None) -> float:
        """The quantile drift is judged at: p90 when the model has it (the held-out metrics'
        quantile), else the serving quantile."""
        qs = self.config.training.model.quantiles if model is None else model.config.quantiles
        serving = (
            self.config.training.model.serving_quantile
            if model is None
            else model.config.serving_quantile
        )
        return 0.9 if 0.9 in qs else serving

    def reload(self) -> tuple[Artifact | None, list[ArtifactError]]:
        """Load the newest valid artifact; keep the current model if none is newer and valid."""
        if self.registry is None:
            return None, []
        artifact, rejected = self.registry.load_latest()
        for _ in rejected:
            self.rejected.inc()
        if artifact is not None and artifact.version != self.version:
            self.install(artifact.model, artifact.version, artifact.metrics)
            with self.lock:  # the cadence counts from the load, not from the process start
                self.retrain_state = RetrainState(self.clock.now(), self.samples_added)
        return artifact, rejected

    def reload_windows(self) -> tuple[WindowArtifact | None, list[ArtifactError]]:
        """Load the newest valid window model; keep the current one if none is newer and valid."""
        if self.window_registry is None:
            return None, []
        artifact, rejected = self.window_registry.load_latest()
        for _ in rejected:
            self.rejected.inc()
        if artifact is not None and artifact.version != self.window_version:
            with self.lock:
                self.window_model = artifact.model
                self.window_version = artifact.version
                self.window_loaded_at = self.clock.now()
            log.info("window_model_installed", version=artifact.version)
        return artifact, rejected

    # ------------------------------------------------------------------ inference

    def predict(
        self, requests: Sequence[PredictionRequest]
    ) -> tuple[list[tuple[float, float] | NotReady], str]:
        """Serving-quantile (TTFT, TPOT) in ms per request, or why not; and the default
        accelerator used for requests that named none."""
        default = self.default_accelerator
        batch = self.predict_columns(_columns(requests, default))
        out: list[tuple[float, float] | NotReady] = []
        for i in range(len(requests)):
            failure = batch.failures.get(i)
            ms = (float(batch.ttft_ms[i]), float(batch.tpot_ms[i]))
            out.append(ms if failure is None else failure)
        return out, default

    def predict_columns(self, columns: FeatureColumns) -> ServingBatch:
        """:meth:`predict` on columns (in-process callers skip the request objects): the serving
        model's calibrated quantiles times the adaptive offsets; every row is counted."""
        model = self.model
        if model is None:
            missing = NotReady(NotReadyReason.NO_MODEL, "no model has been trained or loaded")
            self.predictions.labels(missing.reason.value).inc(len(columns))
            nan = np.full(len(columns), np.nan)
            return ServingBatch(nan, nan.copy(), dict.fromkeys(range(len(columns)), missing))
        batch = model.predict_serving(columns)
        adaptive = self.adaptive
        ttft = batch.ttft_ms * _adaptive_factors(adaptive, Target.TTFT, columns.accelerator)
        tpot = batch.tpot_ms * _adaptive_factors(adaptive, Target.TPOT, columns.accelerator)
        reasons: dict[str, int] = {}
        for failure in batch.failures.values():
            reasons[failure.reason.value] = reasons.get(failure.reason.value, 0) + 1
        for reason, count in reasons.items():
            self.predictions.labels(reason).inc(count)
        ok = len(columns) - len(batch.failures)
        if ok:
            self.predictions.labels("ok").inc(ok)
        return ServingBatch(ttft, tpot, batch.failures)

    # ------------------------------------------------------------------ training

    def add_training(self, entries: Sequence[TrainingEntry]) -> int:
        """Buffer ``entries`` and update online coverage; return how many were accepted."""
        if not entries:
            return 0
        now = self.clock.now()
        columns = _columns(entries, self.default_accelerator)

        def actual(values: Iterable[float | None]) -> FloatArray:
            return np.array([math.nan if v is None or v <= 0 else v for v in values], np.float64)

        stamps = []
        for e in entries:
            if isinstance(e.timestamp, datetime):
                ts = e.timestamp if e.timestamp.tzinfo else e.timestamp.replace(tzinfo=UTC)
                stamps.append(ts.timestamp())
            else:
                stamps.append(now if e.timestamp is None else float(e.timestamp))
        samples = RequestSamples.build(
            columns,
            actual_ttft_ms=actual(e.actual_ttft_ms for e in entries),
            actual_tpot_ms=actual(e.actual_tpot_ms for e in entries),
            timestamp=stamps,
        )
        return self.add_samples(samples)

    def add_samples(self, samples: RequestSamples) -> int:
        """:meth:`add_training` on samples (in-process callers skip the entry objects)."""
        if not len(samples):
            return 0
        now = self.clock.now()
        columns = samples.features
        model = self.model
        monitor = self.monitor
        if model is not None and monitor.quantile in model.config.quantiles:
            j = model.config.quantiles.index(monitor.quantile)
            for target in Target:
                log_q, accs = model.predict_log_quantiles(columns, target)
                monitor = monitor.observe(
                    target, accs, samples.actual(target), np.exp(log_q[:, j]), now
                )
        step = self.config.adaptive_step
        served = model.predict_serving(columns) if model is not None and step > 0 else None
        with self.lock:
            self.buffer.add(samples)
            if self.model is model:  # a model installed meanwhile starts a fresh monitor
                self.monitor = monitor
                if model is not None and served is not None:
                    level = model.config.serving_quantile
                    self.adaptive = _adapted(self.adaptive, served, samples, level, step)
            self.samples_added += len(samples)
        self.samples_counter.inc(len(samples))
        return len(samples)

    def retrain_due(self) -> RetrainReason | None:
        """Why the service should retrain now (cadence or drift), or ``None``."""
        model = self.model
        return retrain_decision(
            self.config.retrain,
            self.retrain_state,
            self.clock.now(),
            self.samples_added,
            has_model=model is not None and model.is_ready,
            drifted=bool(self.monitor.drifted()),
        )

    def maybe_retrain(self) -> RetrainReason | None:
        """Retrain if the policy says so (single-flight); return the reason, or ``None``."""
        if not self.config.train_in_process:
            return None
        reason = self.retrain_due()
        if reason is None or not self._train_lock.acquire(blocking=False):
            return None
        try:
            self.retrain(reason)
        finally:
            self._train_lock.release()
        return reason

    def retrain_now(self) -> TrainingResult | None:
        """A manual retraining (``POST /retrain``); ``None`` when one is already running."""
        if not self._train_lock.acquire(blocking=False):
            return None
        try:
            return self.retrain(RetrainReason.MANUAL)
        finally:
            self._train_lock.release()

    def retrain(self, reason: RetrainReason = RetrainReason.MANUAL) -> TrainingResult:
        """Train on the buffer now; publish and serve the result if it is ready."""
        with self.lock:
            samples, _ = self.buffer.samples()
            added = self.samples_added
            findings = [f.to_json() for f in self.monitor.drifted()]
        now = self.clock.now()
        result = train(samples, self.config.training, now)
        self.retrain_state = RetrainState(last_trained_at=now, samples_added_at_last=added)
        outcome = "installed" if result.model.is_ready else "not_ready"
        version = None
        if result.model.is_ready:
            if self.registry is not None:
                version = self.registry.publish(result)
                self.registry.prune(keep=self.config.keep_versions)
            self.install(result.model, version, result.metrics)
        else:
            log.warning("retrain_not_ready", reason=reason.value, rows=len(samples))
        self.retrains.labels(reason.value, outcome).inc()
        self.retrain_counts[reason] = self.retrain_counts.get(reason, 0) + 1
        self.last_retrain = {
            "reason": reason.value,
            "result": outcome,
            "at": _iso(now),
            "rows": len(samples),
            "model_version": version,
            "drift": findings,
        }
        log.info("retrained", reason=reason.value, result=outcome, rows=len(samples))
        return result

    # ------------------------------------------------------------------ window training

    @property
    def trains_windows(self) -> bool:
        """Whether window models are trained here (a source, a registry, a cadence)."""
        return (
            self.window_source is not None
            and self.window_registry is not None
            and self.config.window_training.enabled
        )

    def maybe_train_windows(self) -> WindowTrainingReport | None:
        """Train window models if the cadence says so (single-flight); the report, or ``None``."""
        if not self.trains_windows:
            return None
        now = self.clock.now()
        if not window_training_due(self.config.window_training, self.window_training_state, now):
            return None
        return self.train_windows_now()

    def train_windows_now(self) -> WindowTrainingReport | None:
        """One run now: read, fit, publish, load; ``None`` when one is running or there is
        nothing to train from."""
        source, registry = self.window_source, self.window_registry
        if source is None or registry is None:
            return None
        if not self._window_train_lock.acquire(blocking=False):
            return None
        try:
            now = self.clock.now()
            start_s, end_s = training_range(self.config.window_training, now)
            queries_before = source.queries_sent
            report = train_windows(source, start_s, end_s, self.config.window_fit, registry, now)
            if report.published:
                registry.prune(keep=self.config.keep_versions)
                self.reload_windows()
            self._record_window_training(report, source.queries_sent - queries_before)
            return report
        finally:
            self._window_train_lock.release()

    def _record_window_training(self, report: WindowTrainingReport, queries: int) -> None:
        result = report.result
        with self.lock:
            self.window_training_state = WindowTrainingState(report.started_at, report.published)
            self.window_training_counts[result] = self.window_training_counts.get(result, 0) + 1
            self.last_window_training = {
                "result": result.value,
                "message": report.message,
                "at": _iso(report.started_at),
                "range": [_iso(report.start_s), _iso(report.end_s)],
                "rows": None if report.dataset is None else len(report.dataset),
                "queries": queries,
                "window_model_version": report.version,
            }
        self.window_trainings.labels(result.value).inc()
        if report.published:
            log.info("window_training", result=result.value, version=report.version)
        else:
            log.warning("window_training", result=result.value, message=report.message)
        with self._window_runs:
            self._window_runs.notify_all()

    def window_trainings_done(self) -> int:
        """Runs finished since the service started (any result)."""
        return sum(self.window_training_counts.values())

    def wait_for_window_trainings(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` runs have finished, or ``timeout_s`` (real time) passes."""
        with self._window_runs:
            return self._window_runs.wait_for(
                lambda: self.window_trainings_done() >= count, timeout_s
            )

    def start_window_training(self) -> None:
        """Start the background thread (no-op when nothing is to be trained or it runs)."""
        if not self.trains_windows or self._window_thread is not None:
            return
        self._window_stop.clear()
        self._window_thread = threading.Thread(
            target=self._window_training_loop, name="window-training", daemon=True
        )
        self._window_thread.start()

    def stop_window_training(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (a run in flight finishes first)."""
        thread, self._window_thread = self._window_thread, None
        self._window_stop.set()
        if thread is not None:
            thread.join(timeout_s)

    def _window_training_loop(self) -> None:
        while not self._window_stop.is_set():
            try:
                self.maybe_train_windows()
            except Exception:  # a bug in one run must not end the cadence
                log.exception("window_training_crashed")
            due = next_due_at(self.config.window_training, self.window_training_state)
            wait = self.config.window_poll_s if due is None else due - self.clock.now()
            self._window_stop.wait(min(max(wait, 1.0), self.config.window_poll_s))

    # ------------------------------------------------------------------ capacity

    def capacity(self, req: CapacityRequest) -> dict[str, Any] | NotReady:
        """Per-replica capacity at the SLO: from the window model when it is ready for
        (accelerator, role), else from the fallback of :mod:`predictor.capacity` (the
        request-level model through a queueing model of the pod, or the analytic model) when a
        profile is known; else why neither can answer."""
        windows = self.window_model
        if windows is None:
            problem = NotReady(NotReadyReason.NO_MODEL, "no window model has been loaded")
            answer: WindowCapacity | NotReady = problem
        else:
            answer = window_capacity_at_slo(
                windows,
                req.isl,
                req.osl,
                req.prefix_hit,
                req.slo_ttft_ms / 1000.0,
                req.slo_tpot_ms / 1000.0,
                accelerator=req.accelerator,
                role=req.role,
                quantile=req.quantile,
            )
        base = {"accelerator": req.accelerator, "role": req.role}
        if isinstance(answer, WindowCapacity):
            self.capacity_answers.labels("learned").inc()
            point = answer.at_capacity
            return {
                **base,
                "rate_rps": answer.rate_rps,
                "limited_by": answer.limited_by.value,
                "source": "learned",
                "fallback_model": None,
                "not_ready": None,
                "window_model_version": self.window_version,
                "at_capacity": {
                    "ttft_ms": point.ttft_s * 1000.0,
                    "tpot_ms": point.itl_s * 1000.0,
                    "num_requests_running": point.num_requests_running,
                    "num_requests_waiting": point.num_requests_waiting,
                    "kv_cache_usage": point.kv_cache_usage,
                },
            }
        profile = (
            req.profile.profile(req.accelerator)
            if req.profile is not None
            else self.config.profiles.get(req.accelerator)
        )
        if profile is None:
            self.capacity_answers.labels("not_ready").inc()
            return NotReady(
                answer.reason,
                f"{answer.message}; no profile for {req.accelerator!r} to fall back on "
                "(send 'profile' or configure one)",
            )
        estimate = capacity_at_slo(
            self.model,
            req.isl,
            req.osl,
            req.prefix_hit,
            req.slo_ttft_ms / 1000.0,
            req.slo_tpot_ms / 1000.0,
            profile=profile,
            accelerator=req.accelerator,
            pod_type=PodType.AGGREGATED if req.role == "aggregated" else PodType(req.role),
        )
        self.capacity_answers.labels("fallback").inc()
        state = estimate.at_capacity
        return {
            **base,
            "rate_rps": estimate.rate_rps,
            "limited_by": estimate.limited_by.value,
            "source": "fallback",
            "fallback_model": (
                "request_level" if estimate.source is Source.LEARNED else "analytic"
            ),
            "not_ready": {"reason": answer.reason.value, "message": answer.message},
            "window_model_version": self.window_version,
            "at_capacity": {
                "ttft_ms": state.ttft_s * 1000.0,
                "tpot_ms": state.tpot_s * 1000.0,
                "num_requests_running": state.running,
                "num_requests_waiting": state.waiting,
                "kv_cache_usage": state.kv_cache_percentage,
            },
        }

    # ------------------------------------------------------------------ reports

    def status(self) -> dict[str, Any]:
        model = self.model
        stats = self.buffer.stats()
        segments = {}
        if model is not None:
            for key in model.segments:
                problem = model.segment_ready(key)
                segments[key.label] = "ready" if problem is None else problem.reason.value
        return {
            "is_ready": model is not None and model.is_ready,
            "model_type": "lightgbm",
            "objective_type": "quantile",
            "quantile": self.config.training.model.serving_quantile,
            "last_model_load": _iso(self.loaded_at),
            "training_server_url": None,
            "models_exist": model is not None,
            "ensemble_active": False,
            "model_version": self.version,
            "layout": None if model is None else model.config.layout.value,
            "accelerators": [] if model is None else list(model.accelerators),
            "segments": segments,
            "buffer": {
                "rows": stats.rows,
                "buckets": stats.buckets,
                "added": stats.added,
                "evicted": stats.evicted,
            },
            "retraining": self.retraining_status(),
            "adaptive_conformal": self.adaptive_status(),
            "window_models": self.window_status(),
        }

    def adaptive_status(self) -> dict[str, Any]:
        """The adaptive conformal offsets, for ``/status``."""
        return {
            "step": self.config.adaptive_step,
            "offsets": [
                {
                    "target": target.value,
                    "accelerator": acc,
                    "level": aci.level,
                    "offset": aci.offset,
                    "observations": aci.observations,
                    "miss_rate": aci.miss_rate,
                }
                for (target, acc), aci in sorted(self.adaptive.items())
            ],
        }

    def retraining_status(self) -> dict[str, Any]:
        """Cadence, drift and the last retraining, for ``/status``."""
        policy = self.config.retrain
        monitor = self.monitor
        findings = monitor.findings()
        counts = {reason.value: self.retrain_counts.get(reason, 0) for reason in RetrainReason}
        due = self.retrain_due() if self.config.train_in_process else None
        return {
            "enabled": self.config.train_in_process,
            "interval_s": policy.interval_s,
            "min_interval_s": policy.min_interval_s,
            "min_new_samples": policy.min_new_samples,
            "last_trained_at": _iso(self.retrain_state.last_trained_at),
            "new_samples": self.samples_added - self.retrain_state.samples_added_at_last,
            "due": None if due is None else due.value,
            "counts": counts,
            "last": self.last_retrain,
            "drift": {
                "drifted": any(f.drifted for f in findings),
                "quantile": monitor.quantile,
                "min_samples": monitor.policy.min_samples,
                "coverage_tolerance": monitor.policy.coverage_tolerance,
                "pinball_ratio": monitor.policy.pinball_ratio,
                "findings": [f.to_json() for f in findings],
            },
        }

    def window_status(self) -> dict[str, Any]:
        """The loaded window model, for ``/status``."""
        windows = self.window_model
        segments: dict[str, str] = {}
        if windows is not None:
            for (acc, role), seg in windows.segments.items():
                segments[f"{acc}/{role}"] = (
                    seg.reason.value if isinstance(seg, NotReady) else "ready"
                )
        return {
            "version": self.window_version,
            "last_model_load": _iso(self.window_loaded_at),
            "segments": segments,
            "profiles": sorted(self.config.profiles),
            "training": self.window_training_status(),
        }

    def window_training_status(self) -> dict[str, Any]:
        """The cadence of window training from Prometheus and its last run, for ``/status``."""
        policy = self.config.window_training
        state = self.window_training_state
        due = next_due_at(policy, state) if self.trains_windows else None
        return {
            "enabled": self.trains_windows,
            "every_s": policy.every_s,
            "lookback_s": policy.lookback_s,
            "retry_s": policy.retry_s,
            "last_attempt_at": _iso(state.last_attempt_at),
            "due": self.trains_windows and window_training_due(policy, state, self.clock.now()),
            "next_due_at": None if due is None or not math.isfinite(due) else _iso(due),
            "counts": {
                r.value: self.window_training_counts.get(r, 0) for r in WindowTrainingResult
            },
            "last": self.last_window_training,
        }

    def models(self) -> dict[str, Any]:
        model = self.model
        data: list[dict[str, Any]] = []
        if model is not None:
            for key, fits in model.segments.items():
                problem = model.segment_ready(key)
                accs = model.accelerators if key.accelerator == "*" else (key.accelerator,)
                data.append(
                    {
                        "id": key.label,
                        "accelerator": key.accelerator,
                        "role": key.role,
                        "ready": problem is None,
                        "reason": None if problem is None else problem.reason.value,
                        "message": None if problem is None else problem.message,
                        "n_train": {
                            t.value: (None if isinstance(f, NotReady) else f.n_train)
                            for t, f in fits.items()
                        },
                        "quantiles": list(model.config.quantiles),
                        "serving_quantile": model.config.serving_quantile,
                        "held_out": [m.to_json() for m in self.held_out if m.accelerator in accs],
                    }
                )
        return {
            "object": "list",
            "version": self.version,
            "layout": None if model is None else model.config.layout.value,
            "data": data,
        }


# ---------------------------------------------------------------------- HTTP


def _validation_error(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


def _item_errors(index: int, exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "type": e["type"],
            "loc": ("body", "requests", index, *e["loc"]),
            "msg": e["msg"],
            "input": e.get("input"),
        }
        for e in exc.errors(include_url=False)
    ]


def create_app(service: PredictorService) -> FastAPI:
    """The FastAPI application over ``service``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start_window_training()  # the first run in the background: ready stays quick
        try:
            yield
        finally:
            service.stop_window_training()

    app = FastAPI(
        title="sloscaler predictor",
        description="llm-d latency predictor compatible TTFT/TPOT prediction service",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        service.latency.labels(endpoint).observe(time.perf_counter() - start)
        service.requests.labels(endpoint, str(response.status_code)).inc()
        return response

    def prediction_json(ttft: float, tpot: float, accelerator: str | None) -> dict[str, Any]:
        return {
            "ttft_ms": ttft,
            "tpot_ms": tpot,
            "predicted_at": _iso(service.clock.now()),
            "model_type": "lightgbm",
            "objective_type": "quantile",
            "quantile": service.config.training.model.serving_quantile,
            "last_model_load": _iso(service.loaded_at),
            "accelerator": accelerator or None,
            "model_version": service.version,
        }

    def not_ready_json(problem: NotReady) -> dict[str, Any]:
        return {"reason": problem.reason.value, "message": problem.message}

    @app.post("/predict")
    async def predict(body: PredictionRequest) -> JSONResponse:
        (answer,), default = service.predict([body])
        if isinstance(answer, NotReady):
            return JSONResponse({"detail": not_ready_json(answer)}, status_code=503)
        return JSONResponse(prediction_json(*answer, body.accelerator or default))

    def check_size(items: list[Any]) -> JSONResponse | None:
        if len(items) > service.config.max_bulk:
            return JSONResponse(
                {
                    "detail": f"requests has {len(items)} items; the limit is "
                    f"{service.config.max_bulk}"
                },
                status_code=413,
            )
        if not items:
            raise _validation_error(
                [
                    {
                        "type": "too_short",
                        "loc": ("body", "requests"),
                        "msg": "List should have at least 1 item after validation, not 0",
                        "input": [],
                    }
                ]
            )
        return None

    @app.post("/predict/bulk")
    async def predict_bulk(body: BulkPredictionRequest) -> JSONResponse:
        start = time.perf_counter()
        too_big = check_size(body.requests)
        if too_big is not None:
            return too_big
        valid: list[PredictionRequest] = []
        where: list[int] = []
        errors: list[dict[str, Any]] = []
        for i, raw in enumerate(body.requests):
            try:
                valid.append(_REQUEST.validate_python(raw))
                where.append(i)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in first["loc"])
                errors.append({"index": i, "error": f"{loc}: {first['msg']}", "request": raw})
        predictions: list[dict[str, Any] | None] = [None] * len(body.requests)
        if valid:
            answers, default = service.predict(valid)
            for i, req, answer in zip(where, valid, answers, strict=True):
                if isinstance(answer, NotReady):
                    errors.append(
                        {
                            "index": i,
                            "error": f"{answer.reason.value}: {answer.message}",
                            "request": req.model_dump(),
                        }
                    )
                else:
                    predictions[i] = prediction_json(*answer, req.accelerator or default)
        errors.sort(key=lambda e: int(e["index"]))
        ok = sum(p is not None for p in predictions)
        return JSONResponse(
            {
                "predictions": predictions,
                "errors": errors,
                "total_requests": len(body.requests),
                "successful_predictions": ok,
                "failed_predictions": len(body.requests) - ok,
                "processing_time_ms": (time.perf_counter() - start) * 1000.0,
            }
        )

    @app.post("/predict/bulk/strict")
    async def predict_bulk_strict(body: BulkPredictionRequest) -> JSONResponse:
        start = time.perf_counter()
        too_big = check_size(body.requests)
        if too_big is not None:
            return too_big
        valid: list[PredictionRequest] = []
        problems: list[dict[str, Any]] = []
        for i, raw in enumerate(body.requests):
            try:
                valid.append(_REQUEST.validate_python(raw))
            except ValidationError as exc:
                problems += _item_errors(i, exc)
        if problems:
            raise _validation_error(problems)
        answers, default = service.predict(valid)
        failed = [(i, a) for i, a in enumerate(answers) if isinstance(a, NotReady)]
        if failed:
            return JSONResponse(
                {
                    "detail": [
                        {"index": i, **not_ready_json(a)}
                        for i, a in failed
                        if isinstance(a, NotReady)
                    ]
                },
                status_code=503,
            )
        predictions = [
            prediction_json(*a, req.accelerator or default)
            for req, a in zip(valid, answers, strict=True)
            if not isinstance(a, NotReady)
        ]
        return JSONResponse(
            {
                "predictions": predictions,
                "total_requests": len(valid),
                "successful_predictions": len(predictions),
                "failed_predictions": 0,
                "processing_time_ms": (time.perf_counter() - start) * 1000.0,
            }
        )

    @app.post("/add_training_data_bulk", status_code=202)
    async def add_training_data_bulk(
        body: TrainingBatch, background: BackgroundTasks
    ) -> JSONResponse:
        if len(body.entries) > service.config.max_training_entries:
            return JSONResponse(
                {
                    "detail": f"entries has {len(body.entries)} items; the limit is "
                    f"{service.config.max_training_entries}"
                },
                status_code=413,
            )
        accepted = service.add_training(body.entries)
        background.add_task(service.maybe_retrain)
        return JSONResponse(
            {"message": f"accepted {accepted} training samples", "accepted": accepted},
            status_code=202,
        )

    @app.post("/reload")
    def reload() -> JSONResponse:
        artifact, rejected = service.reload()
        windows, window_rejected = service.reload_windows()
        return JSONResponse(
            {
                "model_version": service.version,
                "loaded": artifact is not None,
                "rejected": [{"version": e.version, "reason": e.reason} for e in rejected],
                "window_model_version": service.window_version,
                "window_loaded": windows is not None,
                "window_rejected": [
                    {"version": e.version, "reason": e.reason} for e in window_rejected
                ],
            }
        )

    @app.post("/retrain")
    def retrain() -> JSONResponse:
        if not service.buffer.stats().rows:
            return JSONResponse({"detail": "no training samples yet"}, status_code=409)
        result = service.retrain_now()
        if result is None:
            return JSONResponse({"detail": "a retraining is already running"}, status_code=409)
        return JSONResponse({"reason": RetrainReason.MANUAL.value, **(service.last_retrain or {})})

    @app.post("/capacity")
    def capacity(body: CapacityRequest) -> JSONResponse:
        answer = service.capacity(body)
        if isinstance(answer, NotReady):
            return JSONResponse({"detail": not_ready_json(answer)}, status_code=503)
        return JSONResponse(_finite_json(answer))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        model = service.model
        if model is not None and model.is_ready:
            return JSONResponse({"status": "ready", "model_version": service.version})
        return JSONResponse({"status": "not ready", "model_version": service.version}, 503)

    @app.get("/status")
    async def status() -> dict[str, Any]:
        return service.status()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return service.models()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return app
