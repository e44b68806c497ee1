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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from autoscaler.logging import get_logger
from policies.routing import Endpoint, LatencyEstimator, PredictedLatency, RoutingRequest
from predictor.clock import FixedClock
from predictor.outcomes import NotReady
from predictor.service import PredictionRequest, PredictorService, ServiceConfig, TrainingEntry
from simulator.control import FinishedRequest

log = get_logger("sloscaler.learned_latency")

#: llm-d's pod types (``Endpoint.pod_type`` is a plain string)
POD_TYPES: Final[Mapping[str, Literal["", "prefill", "decode"]]] = {
    "": "",
    "prefill": "prefill",
    "decode": "decode",
}
#: Completed requests per posted batch (llm-d's endpoint picker batches its training posts too).
POST_EVERY = 64


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
        self._pending: list[TrainingEntry] = []

    def observe(self, sample: FinishedRequest, now: float) -> None:
        """Queue one completed request; post a full batch and retrain when the service says so."""
        kind = self.pools.get(sample.pool)
        if kind is None or kind.role != "aggregated" or not sample.features:
            return
        f = sample.features
        self._pending.append(
            TrainingEntry.model_construct(
                kv_cache_percentage=f["kv_cache_percentage"],
                input_token_length=sample.input_tokens,
                num_request_waiting=int(f["num_request_waiting"]),
                num_request_running=int(f["num_request_running"]),
                num_tokens_generated=0,
                prefix_cache_score=f["prefix_cache_score"],
                pod_type="",
                prefill_tokens_in_flight=int(f.get("prefill_tokens_in_flight", 0)),
                decode_tokens_in_flight=int(f.get("decode_tokens_in_flight", 0)),
                accelerator=kind.accelerator,
                actual_ttft_ms=sample.ttft_s * 1000.0,
                actual_tpot_ms=sample.tpot_s * 1000.0 if sample.output_tokens > 1 else None,
                timestamp=now,
            )
        )
        if len(self._pending) < self.post_every:
            return
        self.clock.t = max(self.clock.t, now)
        self.service.add_training(self._pending)
        self._pending = []
        reason = self.service.maybe_retrain()
        if reason is not None:
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
        asks = [
            PredictionRequest.model_construct(
                kv_cache_percentage=e.kv_cache_percentage,
                input_token_length=request.input_tokens,
                num_request_waiting=e.num_request_waiting,
                num_request_running=e.num_request_running,
                num_tokens_generated=0,
                prefix_cache_score=e.prefix_cache_score,
                pod_type=POD_TYPES.get(e.pod_type, ""),
                prefill_tokens_in_flight=e.prefill_tokens_in_flight,
                decode_tokens_in_flight=e.decode_tokens_in_flight,
                accelerator=e.accelerator,
            )
            for e in endpoints
        ]
        answers, _ = self.service.predict(asks)
        out: list[tuple[float, float]] = []
        for e, answer in zip(endpoints, answers, strict=True):
            if isinstance(answer, NotReady):
                self.fallback_answers += 1
                out.append(self.fallback.predict(request, [e])[0])
            else:
                self.learned_answers += 1
                out.append((answer[0] / 1000.0, answer[1] / 1000.0))
        return out


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
