"""Drift detection and the retraining ladder: a shift in the data retrains with reason ``drift``;
the same data does not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from predictor.boosting import BoostingParams
from predictor.clock import FixedClock
from predictor.drift import DriftMonitor, DriftPolicy, RollingError
from predictor.features import Target
from predictor.metrics import HeldOutMetrics
from predictor.models import ModelConfig
from predictor.service import PredictorService, ServiceConfig, TrainingEntry, create_app
from predictor.synthetic import synthetic_samples
from predictor.training import (
    RetrainPolicy,
    RetrainReason,
    RetrainState,
    TrainingConfig,
    TrainingResult,
    retrain_decision,
)


def _reference(coverage: float = 0.9, pinball: float = 12.0, mean: float = 100.0) -> HeldOutMetrics:
    return HeldOutMetrics(
        target=Target.TTFT,
        accelerator="H100",
        n=1_000,
        coverage_p90=coverage,
        pinball_p90=pinball,
        mape_mean=0.2,
        r2_mean=0.9,
        mean_actual_ms=mean,
    )


def _monitor_after(actual: np.ndarray, predicted: np.ndarray, **policy: Any) -> DriftMonitor:
    monitor = DriftMonitor.for_model(0.9, [_reference()], DriftPolicy(**policy))
    accs = ("H100",) * len(actual)
    return monitor.observe(Target.TTFT, accs, actual, predicted, now=0.0)


@pytest.mark.parametrize(
    ("rows", "miss_every", "scale", "drifted", "why"),
    [
        (400, 10, 1.0, False, "400 of 500 samples"),  # too few rows to judge
        (600, 10, 1.0, False, "within tolerance"),  # covers 0.90 as held out
        (600, 3, 1.0, True, "coverage 0.667 vs 0.900"),  # p90 now covers two thirds
        (600, 1_000, 1.0, True, "coverage 0.998 vs 0.900"),  # p90 far too wide
        (600, 10, 3.0, True, "relative pinball"),  # misses three times as large
    ],
)
def test_drift_needs_enough_rows_and_a_real_change(
    rows: int, miss_every: int, scale: float, drifted: bool, why: str
) -> None:
    predicted = np.full(rows, 100.0)
    actual = np.full(rows, 90.0)
    actual[::miss_every] = 100.0 + 110.0 * scale  # a miss: above the p90
    (finding,) = _monitor_after(actual, predicted).findings()
    assert finding.drifted is drifted
    assert why in finding.why


def test_rolling_sums_decay_with_the_half_life() -> None:
    state = RollingError().add(np.full(10, 1.0), np.r_[np.full(9, 2.0), 0.5], 0.9, 0.0, 100.0)
    assert state.coverage == pytest.approx(0.9)
    state = state.add(np.full(10, 5.0), np.full(10, 2.0), 0.9, now=100.0, half_life_s=100.0)
    assert state.coverage == pytest.approx(4.5 / 15)  # the old batch weighs half: 4.5 of 5
    assert state.count == 20  # the raw count behind min_samples does not decay


def test_rolling_error_is_per_target_and_accelerator() -> None:
    monitor = DriftMonitor.for_model(0.9, [], DriftPolicy())
    monitor = monitor.observe(
        Target.TTFT, ("H100", "H100", "A100"), np.array([1.0, 5.0, 1.0]), np.full(3, 2.0), 0.0
    )
    assert monitor.rolling[(Target.TTFT, "H100")].coverage == pytest.approx(0.5)
    assert monitor.rolling[(Target.TTFT, "A100")].coverage == pytest.approx(1.0)
    assert (Target.TPOT, "H100") not in monitor.rolling
    assert monitor.findings() == []  # no held-out reference: nothing to compare with


def test_rolling_error_forgets_with_a_half_life() -> None:
    monitor = _monitor_after(np.full(600, 300.0), np.full(600, 100.0), half_life_s=60.0)
    assert monitor.drifted()
    actual = np.full(6_000, 90.0)
    actual[::10] = 110.0  # as held out: one row in ten above the p90, by a little
    later = monitor.observe(Target.TTFT, ("H100",) * 6_000, actual, np.full(6_000, 100.0), 600.0)
    assert not later.drifted()  # ten half-lives later the bad batch weighs 1/1024


@pytest.mark.parametrize(
    ("has_model", "last", "now", "added", "drifted", "expected"),
    [
        (False, None, 0.0, 999, False, None),
        (False, None, 0.0, 1_000, False, RetrainReason.FIRST),
        (True, 0.0, 10.0, 5_000, True, None),  # inside min_interval_s
        (True, 0.0, 60.0, 0, True, None),  # nothing new to learn from
        (True, 0.0, 60.0, 10, True, RetrainReason.DRIFT),
        (True, 0.0, 60.0, 5_000, False, None),  # cadence not due yet
        (True, 0.0, 300.0, 999, False, None),  # due, but too few new samples
        (True, 0.0, 300.0, 1_000, False, RetrainReason.CADENCE),
        (True, None, 0.0, 1_000, False, RetrainReason.CADENCE),  # a model loaded, never trained
    ],
)
def test_retrain_ladder(
    has_model: bool,
    last: float | None,
    now: float,
    added: int,
    drifted: bool,
    expected: RetrainReason | None,
) -> None:
    got = retrain_decision(
        RetrainPolicy(),
        RetrainState(last_trained_at=last, samples_added_at_last=0),
        now,
        added,
        has_model=has_model,
        drifted=drifted,
    )
    assert got is expected


def _entries(n: int, seed: int, ttft_scale: float = 1.0) -> list[TrainingEntry]:
    data = synthetic_samples(n, seed=seed)
    frame = data.to_frame().drop(columns=["timestamp"])
    frame["actual_ttft_ms"] *= ttft_scale
    return [TrainingEntry.model_validate(row) for row in frame.to_dict(orient="records")]


@pytest.fixture
def service(trained: TrainingResult, fast_boosting: BoostingParams) -> PredictorService:
    config = ServiceConfig(
        retrain=RetrainPolicy(interval_s=3_600, min_interval_s=10, min_new_samples=100_000),
        drift=DriftPolicy(min_samples=300),
        training=TrainingConfig(model=ModelConfig(boosting=fast_boosting)),
    )
    svc = PredictorService(config, clock=FixedClock(1_000.0))
    svc.install(trained.model, "v000007", trained.metrics)
    return svc


def test_no_drift_no_retrain(service: PredictorService) -> None:
    service.add_training(_entries(1_500, seed=12))  # fresh rows, same distribution
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(60.0)
    status = service.retraining_status()
    assert status["drift"]["drifted"] is False
    assert len(status["drift"]["findings"]) == 6  # (ttft, tpot) × three accelerators
    assert min(f["samples"] for f in status["drift"]["findings"]) >= 300
    assert service.maybe_retrain() is None
    assert service.version == "v000007"
    assert status["counts"] == {r.value: 0 for r in RetrainReason}


def test_a_shift_in_latency_retrains_with_reason_drift(service: PredictorService) -> None:
    # every TTFT is now 2.5x what the model learned (a slower engine release, say)
    service.add_training(_entries(1_500, seed=13, ttft_scale=2.5))
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(60.0)
    drifted = service.monitor.drifted()
    assert {(f.target, f.accelerator) for f in drifted} == {
        (Target.TTFT, a) for a in ("A100", "H100", "L40S")
    }
    assert service.maybe_retrain() is RetrainReason.DRIFT
    assert service.last_retrain is not None
    assert service.last_retrain["reason"] == "drift"
    assert service.last_retrain["result"] == "installed"
    assert len(service.last_retrain["drift"]) == 3
    assert not service.monitor.drifted()  # a new model starts a fresh comparison
    with TestClient(create_app(service)) as client:
        status = client.get("/status").json()["retraining"]
        assert status["counts"]["drift"] == 1
        assert status["last"]["reason"] == "drift"
        text = client.get("/metrics").text
    assert 'sloscaler_predictor_retrains_total{result="installed",trigger="drift"} 1.0' in text
    assert 'sloscaler_predictor_drift{accelerator="H100",target="ttft"}' not in text  # reset


def test_drift_is_exported_before_it_retrains(service: PredictorService) -> None:
    service.add_training(_entries(1_500, seed=14, ttft_scale=2.5))
    with TestClient(create_app(service)) as client:
        text = client.get("/metrics").text
        status = client.get("/status").json()["retraining"]
    assert 'sloscaler_predictor_drift{accelerator="H100",target="ttft"} 1.0' in text
    assert 'sloscaler_predictor_drift{accelerator="H100",target="tpot"} 0.0' in text
    assert "sloscaler_predictor_online_relative_pinball{" in text
    assert status["drift"]["drifted"] is True
    assert status["due"] == "drift"


def test_manual_retrain_endpoint(service: PredictorService) -> None:
    with TestClient(create_app(service)) as client:
        assert client.post("/retrain").status_code == 409  # nothing buffered yet
        service.add_training(_entries(1_500, seed=15))
        answer = client.post("/retrain")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["reason"] == "manual"
        assert body["result"] == "installed"
        assert body["rows"] == 1_500
        text = client.get("/metrics").text
    assert 'sloscaler_predictor_retrains_total{result="installed",trigger="manual"} 1.0' in text
