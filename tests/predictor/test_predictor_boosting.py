"""The model form: queueing term, quantile maps, and what they buy in overload."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.boosting import BoostingParams, LinearBase, QuantileMap
from predictor.features import FeatureColumns, FeatureLayout, Target
from predictor.models import ModelConfig
from predictor.samples import RequestSamples
from predictor.training import TrainingConfig, train


def test_quantile_map_worked_example_and_extrapolation() -> None:
    q = QuantileMap(knots_x=np.array([3.0, 5.0]), knots_y=np.array([3.5, 5.2]))
    np.testing.assert_allclose(q(np.array([4.0])), [4.35])  # the module doc's example
    np.testing.assert_allclose(q(np.array([2.0, 7.0])), [2.5, 7.2])  # ends keep their offset
    with pytest.raises(ValueError, match="never decrease"):
        QuantileMap(knots_x=np.array([1.0, 2.0]), knots_y=np.array([2.0, 1.0]))


def test_quantile_map_is_non_decreasing_even_when_the_spread_shrinks() -> None:
    rng = np.random.default_rng(0)
    location = rng.uniform(0.0, 10.0, 20_000)
    spread = np.where(location < 5.0, 1.0, 0.05)  # wide at light load, narrow in overload
    log_y = location + spread * rng.standard_normal(location.size)
    q90 = QuantileMap.fit(location, log_y, 0.9)
    grid = np.linspace(-1.0, 11.0, 2_000)
    assert np.all(np.diff(q90(grid)) >= 0)
    # the 1.28·σ offset follows the spread on each side instead of one offset for all
    assert q90(np.array([2.5]))[0] - 2.5 == pytest.approx(1.28, abs=0.1)
    assert q90(np.array([8.0]))[0] - 8.0 == pytest.approx(0.064, abs=0.03)


def test_queueing_term_is_non_negative_least_squares_on_the_load_columns() -> None:
    layout = FeatureLayout.for_target(Target.TTFT)
    rng = np.random.default_rng(1)
    matrix = rng.uniform(0, 1, (5_000, len(layout.columns))) * 100
    waiting = layout.columns.index("num_request_waiting")
    running = layout.columns.index("num_request_running")
    y = 40.0 + 12.0 * matrix[:, waiting] - 0.5 * matrix[:, running]
    base = LinearBase.fit(matrix, y, layout)
    slopes = dict(zip((layout.columns[c] for c in base.columns), base.slopes_ms, strict=True))
    assert slopes["num_request_waiting"] == pytest.approx(12.0, rel=0.02)
    assert slopes["num_request_running"] == 0.0  # a falling relation cannot enter
    assert "prefix_cache_score" not in slopes  # −1 direction: left to the trees
    assert all(s >= 0 for s in base.slopes_ms)


def _queue_pod(n: int, seed: int) -> RequestSamples:
    """A pod whose TTFT is a long, nearly deterministic queue in overload and noisy at light
    load: 12 ms per waiting request, log-normal spread 0.5 below 4 waiting and 0.08 above."""
    rng = np.random.default_rng(seed)
    overload = rng.random(n) < 0.3
    waiting = np.where(overload, rng.integers(4, 300, n), rng.integers(0, 4, n)).astype(float)
    running = np.where(overload, 128.0, rng.integers(1, 128, n)).astype(float)
    spread = np.where(waiting >= 4, 0.08, 0.5)
    ttft = (40.0 + 12.0 * waiting + 0.2 * running) * rng.lognormal(0.0, spread)
    features = FeatureColumns.from_arrays(
        {
            "kv_cache_percentage": running / 128.0,
            "input_token_length": rng.integers(100, 2_000, n),
            "num_request_waiting": waiting,
            "num_request_running": running,
        },
        accelerator="H100",
    )
    return RequestSamples.build(features, actual_ttft_ms=ttft, actual_tpot_ms=10.0 + running / 10)


def test_overload_rows_are_covered_at_p90_not_always(fast_boosting: BoostingParams) -> None:
    # A monotone p90 built as "location + monotone corrections" cannot narrow its spread as the
    # queue grows, and covered every row with 32 or more waiting; the quantile map can.
    config = TrainingConfig(model=ModelConfig(boosting=fast_boosting))
    model = train(_queue_pod(20_000, seed=1), config, now=0.0).model
    fresh = _queue_pod(20_000, seed=2)
    log_q, _ = model.predict_log_quantiles(fresh.features, Target.TTFT)
    p90 = np.exp(log_q[:, model.config.quantiles.index(0.9)])
    waiting = fresh.features.values["num_request_waiting"]
    y = fresh.actual_ttft_ms
    for stratum in (waiting < 4, waiting >= 32):
        assert 0.86 <= np.mean(y[stratum] <= p90[stratum]) <= 0.94
    long_queue = waiting >= 200
    truth = (40.0 + 12.0 * waiting + 0.2 * 128.0) * np.exp(1.2816 * 0.08)
    error = np.abs(p90[long_queue] / truth[long_queue] - 1.0)
    assert np.median(error) < 0.05  # the queueing term tracks the line between tree steps
