"""The baselines behave as described: Bayesian ridge (mean + 1.28·std) and unconstrained GBM."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.baselines import (
    LLM_D_Z90,
    BayesianRidgeBaseline,
    BoostedQuantileBaseline,
    evaluate_baseline,
    fit_bayesian_ridge,
)
from predictor.features import Target
from predictor.synthetic import synthetic_samples


def test_bayesian_ridge_recovers_a_linear_model_and_its_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5_000, 3))
    y = 2.0 + x @ np.array([1.5, -0.5, 0.0]) + rng.normal(0, 0.3, 5_000)
    fit = fit_bayesian_ridge(x, y)
    mean, sd = fit.predict(np.array([[1.0, 1.0, 1.0]]))
    assert mean[0] == pytest.approx(3.0, abs=0.03)
    assert sd[0] == pytest.approx(0.3, rel=0.05)
    assert 1.0 / np.sqrt(fit.alpha) == pytest.approx(0.3, rel=0.05)


def test_ridge_quantile_is_mean_plus_1_28_std() -> None:
    data = synthetic_samples(3_000, seed=1)
    baseline = BayesianRidgeBaseline.fit(data)
    fit = baseline.fits[(Target.TTFT, "*")]
    p90, mean = baseline.predict(data.features.take(np.arange(5)), Target.TTFT)
    from predictor.baselines import _design

    m, sd = fit.predict(_design(data.features.take(np.arange(5)), Target.TTFT))
    np.testing.assert_allclose(mean, m)
    np.testing.assert_allclose(p90, m + LLM_D_Z90 * sd)


def test_both_baselines_score_on_every_accelerator() -> None:
    train, test = synthetic_samples(4_000, seed=2), synthetic_samples(2_000, seed=3)
    for baseline in (
        BayesianRidgeBaseline.fit(train),
        BoostedQuantileBaseline.fit(train, trees=30),
        BoostedQuantileBaseline.fit(train, per_accelerator=True, trees=30),
    ):
        metrics = evaluate_baseline(baseline, test)
        assert {m.accelerator for m in metrics} == {"*", "A100", "H100", "L40S"}
        assert all(m.n > 0 and m.not_ready == 0 for m in metrics)
