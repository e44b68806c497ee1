"""Predicted-latency routing on the predictor's learned request-level models, learned online.

Why this module exists: sloscaler learns one set of latency models and uses it for routing as
well as for scaling. In a cluster, llm-d's endpoint picker posts every completed request to the
predictor service (``/add_training_data_bulk``: the features it routed on, the TTFT and TPOT it
got) and asks it for predictions (``/predict/bulk``). In the simulator the gateway does the same
against an in-process :class:`predictor.service.PredictorService` on the simulation's clock:
the same stratified buffer, retraining cadence, conformal calibration, adaptive offsets and
drift checks as ``sloscaler predictor serve``, without the HTTP.

**Before the service has a model**, and for any candidate whose (accelerator, role) the model
does not serve yet (``NotReady``), the estimate comes from the pool's calibrated profile
(:class:`autoscaler.latency.ProfileLatencyEstimator`) — the fallback the predictor's request-level
models take over from. With the service's defaults (``RetrainPolicy``) the first model is
trained once 1,000 requests have completed — about 50 s into a 20 req/s run — and retrained
every 300 s once 1,000 more arrived, or earlier on drift; a fit that fails its checks is not
installed and the previous model (or the profile) keeps answering.

**What it predicts** is the service's serving quantile (p90, calibrated), so the scorer's
headroom is ``SLO − p90`` per candidate: a pod whose p90 TTFT is 0.7 s has 0.3 s of headroom
under a 1 s SLO, where the profile's point estimate of, say, 0.5 s would claim 0.5 s.

**Samples** are posted in batches of ``post_every`` completed requests (64), each with the
features the gateway saw when it routed the request. Only requests served by aggregated pools
are learned from: a disaggregated request is routed twice (prefill pod, then decode pod) and its
TTFT belongs to the first pick, so those candidates keep the profile's answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autoscaler.logging import get_logger
from policies.routing import Endpoint, LatencyEstimator, PredictedLatency, RoutingRequest
from predictor.clock import FixedClock
from predictor.features import (
    DECODE_TOKENS_IN_FLIGHT,
    INPUT_TOKEN_LENGTH,
    KV_CACHE_PERCENTAGE,
    NUM_REQUEST_RUNNING,
    NUM_REQUEST_WAITING,
    NUM_TOKENS_GENERATED,
    NUMERIC_FEATURES,
    PREFILL_TOKENS_IN_FLIGHT,
    PREFIX_CACHE_SCORE,
    FeatureColumns,
)
from predictor.samples import RequestSamples
from predictor.service import PredictorService, ServiceConfig
from simulator.control import FinishedRequest

log = get_logger("sloscaler.learned_latency")

#: Completed requests per posted batch (llm-d's endpoint picker batches its training posts too).
POST_EVERY = 64
#: The numeric columns of a posted sample (followed in the queued rows by TTFT ms, TPOT ms and
#: the completion time): llm-d's, less the tokens generated (0)
SAMPLE_FEATURES = tuple(n for n in NUMERIC_FEATURES if n != NUM_TOKENS_GENERATED)


@dataclass(frozen=True, slots=True)
class PoolKind:
    accelerator: str
    role: str


class LearnedLatencyEstimator:
    """``policies.routing.LatencyEstimator`` from a predictor service trained on the requests
    the gateway routed; the ``fallback`` answers where the service has no ready model."""

    def __init__(
        self,
        fallback: LatencyEstimator,
        pools: Mapping[str, PoolKind],
        *,
        config: ServiceConfig | None = None,
        post_every: int = POST_EVERY,
    ) -> None:
        if post_every < 1:
            raise ValueError("post_every must be ≥ 1")
        self.fallback = fallback
        self.pools = dict(pools)
        self.clock = FixedClock()
        self.service = PredictorService(config or ServiceConfig(), clock=self.clock)
        self.post_every = post_every
        self.learned_answers = 0
        self.fallback_answers = 0
        self.first_model_s: float | None = None
        self._pending: list[tuple[float, ...]] = []
        self._pending_accelerators: list[str] = []

    def observe(self, sample: FinishedRequest, now: float) -> None:
        """Queue one completed request; post a full batch and retrain when the service says so."""
        kind = self.pools.get(sample.pool)
        if kind is None or kind.role != "aggregated" or not sample.features:
            return
        routed = {**sample.features, INPUT_TOKEN_LENGTH: sample.input_tokens}
        self._pending.append(
            (
                *(float(routed.get(name, 0.0)) for name in SAMPLE_FEATURES),
                sample.ttft_s * 1000.0,
                sample.tpot_s * 1000.0 if sample.output_tokens > 1 else math.nan,
                now,
            )
        )
        self._pending_accelerators.append(kind.accelerator)
        if len(self._pending) < self.post_every:
            return
        table = np.array(self._pending, dtype=np.float64)
        columns = FeatureColumns.from_arrays(
            dict(zip(SAMPLE_FEATURES, table.T[: len(SAMPLE_FEATURES)], strict=True)),
            accelerator=self._pending_accelerators,
        )
        self.clock.t = max(self.clock.t, now)
        self.service.add_samples(RequestSamples.build(columns, *table.T[len(SAMPLE_FEATURES) :]))
        self._pending, self._pending_accelerators = [], []
        reason = self.service.maybe_retrain()
        if reason is not None:
            if self.first_model_s is None and self.service.model is not None:
                self.first_model_s = now
            log.info(
                "latency_model_trained",
                t=round(now, 1),
                reason=reason.value,
                ready=self.service.model is not None and self.service.model.is_ready,
                rows=len(self.service.buffer),
            )

    def predict(
        self, request: RoutingRequest, endpoints: Sequence[Endpoint]
    ) -> list[tuple[float, float]]:
        if self.service.model is None:
            self.fallback_answers += len(endpoints)
            return self.fallback.predict(request, endpoints)
        columns = FeatureColumns.from_arrays(
            {
                KV_CACHE_PERCENTAGE: [e.kv_cache_percentage for e in endpoints],
                INPUT_TOKEN_LENGTH: [request.input_tokens] * len(endpoints),
                NUM_REQUEST_WAITING: [e.num_request_waiting for e in endpoints],
                NUM_REQUEST_RUNNING: [e.num_request_running for e in endpoints],
                PREFILL_TOKENS_IN_FLIGHT: [e.prefill_tokens_in_flight for e in endpoints],
                DECODE_TOKENS_IN_FLIGHT: [e.decode_tokens_in_flight for e in endpoints],
                PREFIX_CACHE_SCORE: [e.prefix_cache_score for e in endpoints],
            },
            pod_type=[e.pod_type for e in endpoints],
            accelerator=[e.accelerator for e in endpoints],
        )
        batch = self.service.predict_columns(columns)
        out: list[tuple[float, float]] = []
        for i, e in enumerate(endpoints):
            if i in batch.failures:
                self.fallback_answers += 1
                out.append(self.fallback.predict(request, [e])[0])
            else:
                self.learned_answers += 1
                out.append((float(batch.ttft_ms[i]) / 1000.0, float(batch.tpot_ms[i]) / 1000.0))
        return out

    def report(self) -> dict[str, float | int | str | None]:
        """For the run's summary: samples posted, trainings, when the first model served, and
        the share of candidate predictions the learned models made."""
        answers = self.learned_answers + self.fallback_answers
        return {
            "latency_model": "learned",
            "samples_posted": self.service.samples_added,
            "trainings": sum(self.service.retrain_counts.values()),
            "first_model_s": None if self.first_model_s is None else round(self.first_model_s, 1),
            "learned_share": round(self.learned_answers / answers, 4) if answers else None,
        }


class LearningPredictedLatency(PredictedLatency):
    """The predicted-latency scorer on a :class:`LearnedLatencyEstimator`; the simulated gateway
    hands it every completed request (``simulator.control.LearnsFromRequests``)."""

    def __init__(
        self, estimator: LearnedLatencyEstimator, slo_ttft_s: float, slo_tpot_s: float
    ) -> None:
        super().__init__(estimator, slo_ttft_s, slo_tpot_s)
        self.learner = estimator

    def observe(self, sample: FinishedRequest, now: float) -> None:
        self.learner.observe(sample, now)

    def report(self) -> dict[str, float | int | str | None]:
        return self.learner.report()
