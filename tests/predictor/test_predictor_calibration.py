"""Split-conformal calibration per accelerator and waiting-queue stratum, and adaptive offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictor.calibration import (
    AdaptiveOffset,
    conformal_quantile,
    fit_conformal,
    stratified_offsets,
    waiting_strata,
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


def test_stratified_offsets_pool_small_strata_and_violators() -> None:
    # the module doc's example with constant scores, so every conformal quantile is exact
    sizes = {0: (1_000, 0.30), 1: (600, 0.34), 2: (300, 0.22), 3: (200, 0.41), 4: (30, 0.05)}
    scores = np.concatenate([np.full(n, v) for n, v in sizes.values()])
    strata = np.concatenate([np.full(n, k) for k, (n, _) in sizes.items()]).astype(np.intp)
    fitted = stratified_offsets(scores, strata, 7, 0.9, min_rows=50)
    assert fitted is not None
    offsets, rows = fitted
    # 4 (30 rows) and the empty 5–6 join 3; 1 (0.34) and 2 (0.22) decrease, so they pool
    assert offsets == pytest.approx((0.30, 0.34, 0.34, 0.41, 0.41, 0.41, 0.41))
    assert rows == (1_000, 600, 300, 200, 30, 0, 0)
    assert stratified_offsets(scores[:5], strata[:5], 7, 0.9, min_rows=50) is None  # k = 6 > 5


def test_waiting_strata_are_the_buffer_buckets() -> None:
    waiting = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 500], dtype=np.float64)
    assert waiting_strata(waiting).tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]


def test_trained_offsets_never_fall_as_the_queue_grows(trained: TrainingResult) -> None:
    entries = trained.model.calibration.entries.values()
    assert entries
    for entry in entries:
        assert len(entry.offsets) == 7
        assert all(b >= a for a, b in zip(entry.offsets, entry.offsets[1:], strict=False))


def test_p90_coverage_per_waiting_stratum_on_fresh_data(trained: TrainingResult) -> None:
    fresh = synthetic_samples(30_000, seed=99)
    waiting = fresh.features.values["num_request_waiting"]
    for target in Target:
        log_q, _ = trained.model.predict_log_quantiles(fresh.features, target)
        p90 = np.exp(log_q[:, trained.model.config.quantiles.index(0.9)])
        actual = fresh.actual(target)
        for lo, hi in ((0, 1), (1, 4), (4, 32), (32, math.inf)):
            rows = (waiting >= lo) & (waiting < hi)
            assert rows.sum() > 1_500
            assert 0.87 <= np.mean(actual[rows] <= p90[rows]) <= 0.93, (target, lo)


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
    state = AdaptiveOffset(level=0.9, step=0.0004)  # the module docstring's example
    assert state.update(misses=20, total=100).offset == pytest.approx(0.004)
    assert state.update(misses=5, total=100).offset == pytest.approx(-0.002)
    assert state.update(misses=10, total=100).offset == pytest.approx(0.0)
    assert state.update(misses=20, total=100).miss_rate == pytest.approx(0.2)
    assert state.update(misses=0, total=0) == state
    assert state.miss_rate is None


def _replay(scores: np.ndarray, step: float) -> tuple[AdaptiveOffset, np.ndarray]:
    """ACI one observation at a time against a fixed p90 (log 1.2816, the standard normal's):
    the final state and whether each observation was missed."""
    state = AdaptiveOffset(level=0.9, step=step)
    missed = np.zeros(scores.size, dtype=bool)
    for i, s in enumerate(scores):
        missed[i] = s > 1.2816 + state.offset
        state = state.update(int(missed[i]), 1)
    return state, missed


def test_adaptive_offset_follows_a_shifted_stream() -> None:
    # The calibration saw N(0, 1) scores; the stream is N(0.5, 1): the p90 misses 22 %.
    scores = np.random.default_rng(3).normal(0.5, 1.0, 6_000)
    assert np.mean(scores > 1.2816) == pytest.approx(0.22, abs=0.02)
    state, missed = _replay(scores, step=0.01)
    assert 0.3 < state.offset < 0.8
    assert 0.08 <= missed[3_000:].mean() <= 0.12
    assert 0.08 <= state.miss_rate <= 0.12  # type: ignore[operator]


def test_adaptive_offset_keeps_a_calibrated_stream_covered() -> None:
    scores = np.random.default_rng(4).normal(0.0, 1.0, 6_000)
    state, missed = _replay(scores, step=0.01)
    assert abs(state.offset) < 0.3
    assert 0.88 <= 1.0 - missed.mean() <= 0.92
