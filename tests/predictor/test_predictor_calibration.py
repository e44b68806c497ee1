"""Split-conformal calibration per accelerator, adaptive offsets and online coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictor.calibration import (
    AdaptiveOffset,
    CoverageState,
    CoverageTracker,
    conformal_quantile,
    fit_conformal,
    update_coverage,
)
from predictor.features import Target
from predictor.synthetic import synthetic_samples
from predictor.training import TrainingResult, evaluate_model


def test_conformal_quantile_worked_example() -> None:
    scores = np.array([-0.3, -0.2, -0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4])
    assert conformal_quantile(scores, 0.9) == pytest.approx(0.4)
    assert conformal_quantile(scores, 0.5) == pytest.approx(0.05)  # k = ceil(10·0.5) = 5


def test_conformal_quantile_is_infinite_when_too_few_scores() -> None:
    assert conformal_quantile(np.array([0.1, 0.2]), 0.9) == math.inf
    assert conformal_quantile(np.array([]), 0.5) == math.inf


def test_fit_conformal_falls_back_to_pooled_for_small_accelerators() -> None:
    rng = np.random.default_rng(0)
    n = 400
    accs = tuple(["H100"] * (n - 10) + ["L4"] * 10)
    entries = fit_conformal(Target.TTFT, 0.9, rng.normal(0, 1, n), np.zeros(n), accs, min_rows=50)
    names = {e.accelerator for e in entries}
    assert names == {"*", "H100"}


def test_held_out_p90_coverage_is_within_two_points(trained: TrainingResult) -> None:
    for target in Target:
        headline = trained.headline(target)
        assert headline is not None
        assert headline.n > 3_000
        assert 0.88 <= headline.coverage_p90 <= 0.92


def test_p90_coverage_per_accelerator_on_fresh_data(trained: TrainingResult) -> None:
    # 30,000 fresh rows (10,000 per accelerator): sampling noise is ±0.3 points, so the ±2
    # point band tests the calibration itself.
    fresh = synthetic_samples(30_000, seed=99)
    for m in evaluate_model(trained.model, fresh):
        assert m.n >= 9_000
        assert 0.88 <= m.coverage_p90 <= 0.92, m


def test_calibration_has_an_offset_per_accelerator(trained: TrainingResult) -> None:
    accs = {a for (_, q, a) in trained.model.calibration.entries if q == 0.9}
    assert accs == {"*", "A100", "H100", "L40S"}


def test_adaptive_offset_moves_toward_the_target_miss_rate() -> None:
    state = AdaptiveOffset(level=0.9, offset=0.0, step=0.05)
    assert state.update(misses=20, total=100).offset == pytest.approx(0.005)
    assert state.update(misses=10, total=100).offset == pytest.approx(0.0)
    assert state.update(misses=0, total=100).offset < 0
    assert state.update(misses=0, total=0) == state


def test_coverage_decays_with_half_life() -> None:
    s = update_coverage(CoverageState(), hits=9, total=10, now=0.0, half_life_s=100.0)
    assert s.coverage == pytest.approx(0.9)
    s = update_coverage(s, hits=0, total=10, now=100.0, half_life_s=100.0)
    # the old batch weighs half: (4.5 + 0) / (5 + 10)
    assert s.coverage == pytest.approx(4.5 / 15)


def test_tracker_is_per_target_and_accelerator() -> None:
    tracker = CoverageTracker(quantile=0.9)
    tracker = tracker.observe(
        Target.TTFT,
        ("H100", "H100", "A100"),
        np.array([1.0, 5.0, 1.0]),
        np.array([2.0, 2.0, 2.0]),
        now=0.0,
    )
    assert tracker.coverage(Target.TTFT, "H100") == pytest.approx(0.5)
    assert tracker.coverage(Target.TTFT, "A100") == pytest.approx(1.0)
    assert tracker.coverage(Target.TPOT, "H100") is None
