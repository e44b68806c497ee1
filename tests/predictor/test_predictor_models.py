"""Latency models: monotone by construction, rejected when not, NotReady instead of guesses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.boosting import BoostingParams
from predictor.features import FeatureColumns, PodType, RequestFeatures, Target
from predictor.models import Layout, ModelConfig, SegmentKey, fit_latency_model
from predictor.outcomes import NotReady, NotReadyReason, Prediction
from predictor.samples import RequestSamples
from predictor.synthetic import synthetic_samples
from predictor.training import TrainingResult


def decreasing_in_running(n: int = 3_000, seed: int = 0) -> RequestSamples:
    """Samples whose TTFT *falls* as the batch grows: a fit without constraints follows it."""
    rng = np.random.default_rng(seed)
    running = rng.integers(0, 64, n).astype(float)
    features = FeatureColumns.from_arrays(
        {
            "kv_cache_percentage": rng.random(n),
            "input_token_length": rng.integers(10, 2000, n),
            "num_request_waiting": rng.integers(0, 4, n),
            "num_request_running": running,
        },
        accelerator="H100",
    )
    ttft = 500.0 / (1.0 + running) * rng.lognormal(0, 0.05, n)
    return RequestSamples.build(features, actual_ttft_ms=ttft, actual_tpot_ms=10.0 + running)


def test_unconstrained_non_monotone_fit_is_rejected(fast_boosting: BoostingParams) -> None:
    config = ModelConfig(boosting=replace(fast_boosting, monotone=False), min_samples=100)
    model = fit_latency_model(decreasing_in_running(), config)
    fit = model.segments[SegmentKey("H100", "aggregated")][Target.TTFT]
    assert isinstance(fit, NotReady)
    assert fit.reason is NotReadyReason.NOT_MONOTONE
    assert "num_request_running" in fit.message
    assert not model.is_ready
    answer = model.predict(FeatureColumns.from_requests([RequestFeatures(0.1, 100, 0, 3)]))[0]
    assert isinstance(answer, NotReady)
    assert answer.reason is NotReadyReason.NOT_MONOTONE


def test_constrained_fit_of_the_same_data_passes_the_check(fast_boosting: BoostingParams) -> None:
    config = ModelConfig(boosting=fast_boosting, min_samples=100)
    model = fit_latency_model(decreasing_in_running(), config)
    assert model.is_ready


def test_too_few_samples_is_not_ready_per_segment(fast_boosting: BoostingParams) -> None:
    data = synthetic_samples(2_000, seed=1)
    config = ModelConfig(boosting=fast_boosting, min_samples=500)
    model = fit_latency_model(data, config)
    # ~667 rows per accelerator: every segment fits; a higher floor refuses them all.
    assert model.is_ready
    strict = fit_latency_model(data, replace(config, min_samples=5_000))
    assert not strict.is_ready
    fit = strict.segments[SegmentKey("H100", "aggregated")][Target.TTFT]
    assert isinstance(fit, NotReady)
    assert fit.reason is NotReadyReason.TOO_FEW_SAMPLES
    assert "needs 5000" in fit.message


def test_unknown_accelerator_and_segment_are_not_ready(trained: TrainingResult) -> None:
    model = trained.model
    rows = [
        RequestFeatures(0.2, 500, 0, 8, accelerator="TPU"),
        RequestFeatures(0.2, 500, 0, 8, accelerator="H100", pod_type=PodType.DECODE),
        RequestFeatures(0.2, 500, 0, 8, accelerator="H100"),
    ]
    out = model.predict(FeatureColumns.from_requests(rows))
    assert isinstance(out[0], NotReady)
    assert out[0].reason is NotReadyReason.UNKNOWN_ACCELERATOR
    assert isinstance(out[1], NotReady)
    assert out[1].reason is NotReadyReason.UNKNOWN_SEGMENT
    assert isinstance(out[2], Prediction)
    batch = model.predict_serving(FeatureColumns.from_requests(rows))
    assert set(batch.failures) == {0, 1}
    assert np.isnan(batch.ttft_ms[:2]).all()
    assert batch.ttft_ms[2] == pytest.approx(out[2].ttft_ms)
    assert batch.tpot_ms[2] == pytest.approx(out[2].tpot_ms)


def test_quantiles_are_ordered_and_serving_is_p90(trained: TrainingResult) -> None:
    data = synthetic_samples(500, seed=5)
    for answer in trained.model.predict(data.features):
        assert isinstance(answer, Prediction)
        for lat in (answer.ttft, answer.tpot):
            assert lat.quantiles == (0.5, 0.9)
            assert lat.values_ms[0] <= lat.values_ms[1]
            assert lat.mean_ms >= 0
        assert answer.ttft_ms == answer.ttft.at(0.9)


load = st.floats(0.0, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    kv=load,
    waiting=st.integers(0, 60),
    running=st.integers(0, 120),
    prefill=st.integers(0, 20_000),
    decode=st.integers(0, 200_000),
    bump=st.sampled_from(
        [
            "kv_cache_percentage",
            "num_request_waiting",
            "num_request_running",
            "prefill_tokens_in_flight",
            "decode_tokens_in_flight",
        ]
    ),
    acc=st.sampled_from(["H100", "A100", "L40S"]),
)
def test_more_load_never_predicts_less_latency(
    trained: TrainingResult,
    kv: float,
    waiting: int,
    running: int,
    prefill: int,
    decode: int,
    bump: str,
    acc: str,
) -> None:
    base = RequestFeatures(kv, 800, waiting, running, prefill, decode, 0.3, 20, accelerator=acc)
    if bump == "kv_cache_percentage":
        more = replace(base, kv_cache_percentage=min(1.0, kv + 0.2))
    else:
        more = replace(base, **{bump: 2 * getattr(base, bump) + 5})
    out = trained.model.predict_serving(FeatureColumns.from_requests([base, more]))
    assert out.ttft_ms[1] >= out.ttft_ms[0]
    assert out.tpot_ms[1] >= out.tpot_ms[0]


def test_pooled_layout_fits_one_model_with_accelerator_categorical(
    fast_boosting: BoostingParams,
) -> None:
    data = synthetic_samples(6_000, seed=3)
    model = fit_latency_model(data, ModelConfig(boosting=fast_boosting, layout=Layout.POOLED))
    assert list(model.segments) == [SegmentKey("*", "*")]
    assert model.is_ready
    rows = [RequestFeatures(0.3, 800, 0, 40, accelerator=a) for a in ("H100", "L40S")]
    fast, slow = model.predict_serving(FeatureColumns.from_requests(rows)).tpot_ms
    assert fast < slow  # the L40S profile decodes more slowly
