"""Predicted-latency routing on request-level models learned online: the profile answers until
the in-process predictor service has trained a model, then the model does (where it is ready);
samples post in batches; disaggregated pools are not learned from; the simulated gateway feeds
the scorer every completed request."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from autoscaler.learned_latency import LearnedLatencyEstimator, LearningPredictedLatency, PoolKind
from autoscaler.policies import build_scorer
from policies.routing import Endpoint, PredictedLatency, RoutingRequest
from predictor.features import NUMERIC_FEATURES
from predictor.synthetic import SYNTHETIC_ACCELERATORS, synthetic_samples
from simulator.cluster import DONE
from simulator.control import FinishedRequest, LearnsFromRequests
from simulator.runner import run_scenario
from simulator.scenario import load_scenario

FALLBACK_S = (9.0, 0.9)  # what the stand-in profile answers, far from anything learned


class ConstantEstimator:
    def __init__(self) -> None:
        self.calls = 0

    def predict(
        self, request: RoutingRequest, endpoints: Sequence[Endpoint]
    ) -> list[tuple[float, float]]:
        self.calls += len(endpoints)
        return [FALLBACK_S] * len(endpoints)


def finished(n: int, pool: str = "h100-pool", seed: int = 0) -> list[FinishedRequest]:
    """Completed requests on one H100 pool from the synthetic pod model."""
    s = synthetic_samples(n, seed=seed, accelerators=SYNTHETIC_ACCELERATORS[:1])
    v = s.features.values
    out = []
    for i in range(n):
        features = {k: float(v[k][i]) for k in NUMERIC_FEATURES}
        out.append(
            FinishedRequest(
                pool=pool,
                pod=f"{pool}-0",
                arrival_s=float(s.timestamp[i]),
                input_tokens=int(features.pop("input_token_length")),
                output_tokens=100,
                prefix_hit_tokens=0,
                ttft_s=float(s.actual_ttft_ms[i]) / 1000,
                tpot_s=float(s.actual_tpot_ms[i]) / 1000,
                features=features,
            )
        )
    return out


def endpoint(waiting: int, accelerator: str = "H100", pool: str = "h100-pool") -> Endpoint:
    return Endpoint(f"{pool}-0", pool, accelerator, "", 0.4, waiting, 40, 4_000, 20_000, 0.0)


POOLS = {"h100-pool": PoolKind("H100", "aggregated"), "pd-prefill": PoolKind("H100", "prefill")}


def test_the_profile_answers_until_a_model_is_trained_then_the_model_does() -> None:
    fallback = ConstantEstimator()
    est = LearnedLatencyEstimator(fallback, POOLS, post_every=100)
    request = RoutingRequest(1000, 100)
    samples = finished(1_500)
    for k, sample in enumerate(samples[:900]):
        est.observe(sample, float(k))
    assert est.service.model is None  # 900 < the first training's 1,000 samples
    assert est.predict(request, [endpoint(0)]) == [FALLBACK_S]
    for k, sample in enumerate(samples[900:], start=900):
        est.observe(sample, float(k))
    assert est.service.model is not None
    assert est.service.model.is_ready
    assert est.service.samples_added == 1_500  # posted in batches of 100
    light, heavy, other = est.predict(
        request, [endpoint(0), endpoint(30), endpoint(0, accelerator="MI300X")]
    )
    assert light != FALLBACK_S
    assert heavy != FALLBACK_S
    assert heavy[0] >= light[0]  # the learned model is monotone in the queue
    assert 0.001 < light[0] < 5.0
    assert 0.0001 < light[1] < 0.5
    assert other == FALLBACK_S  # no model for this accelerator: the profile answers
    assert (est.learned_answers, est.fallback_answers) == (2, 2)


def test_disaggregated_and_unknown_pools_are_not_learned_from() -> None:
    est = LearnedLatencyEstimator(ConstantEstimator(), POOLS, post_every=1)
    for sample in finished(50, pool="pd-prefill") + finished(50, pool="gone"):
        est.observe(sample, sample.arrival_s)
    assert est.service.samples_added == 0
    with pytest.raises(ValueError, match="post_every"):
        LearnedLatencyEstimator(ConstantEstimator(), POOLS, post_every=0)


def test_the_scenario_chooses_the_latency_model_and_the_gateway_feeds_it() -> None:
    base = load_scenario("long-prefill")
    gen = {**(base.trace.generate or {}), "rate_rps": 20.0, "duration_s": 120.0}
    sc = base.model_copy(update={"trace": base.trace.model_copy(update={"generate": gen})})
    profile = base.gateway.model_copy(update={"latency_model": "profile"})
    assert type(build_scorer(base.model_copy(update={"gateway": profile}))) is PredictedLatency
    scorer = build_scorer(sc)  # learned by default
    assert isinstance(scorer, LearningPredictedLatency)
    assert isinstance(scorer, LearnsFromRequests)
    result = run_scenario(sc, scorer=scorer)
    service = scorer.learner.service
    done = int(np.sum(result.output.records.status == DONE))
    assert done > 2_000
    # every completed request but the last partial batch was posted, and a model took over
    assert done - service.samples_added < scorer.learner.post_every
    assert service.model is not None
    assert service.model.is_ready
    assert scorer.learner.learned_answers > scorer.learner.fallback_answers > 0
    report = result.summary["gateway"]  # what simulate --json says of it
    assert report["scorer"] == "predicted-latency"
    assert report["latency_model"] == "learned"
    assert report["samples_posted"] == service.samples_added
    assert report["trainings"] >= 1
    assert 0 < report["first_model_s"] < 120
    assert 0.5 < report["learned_share"] < 1
