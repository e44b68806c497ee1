"""The two predictors ours is measured against, written from their published descriptions.

Why this module exists: the claim "better than llm-d's latency predictor" needs llm-d's models as
they behave by default, trained and scored on the same rows by the same metrics
(:mod:`predictor.metrics`). Both use llm-d's feature sets and, like llm-d, one model for the
whole pool (no accelerator feature) unless ``per_accelerator=True``.

**Bayesian ridge** (llm-d's linear option): Gaussian prior ``w ~ N(0, λ⁻¹I)`` and noise precision
``α``, both fitted by evidence maximisation (MacKay's fixed point, as scikit-learn's
``BayesianRidge``): with ``X = U·S·Vᵀ`` and eigenvalues ``e = S²``,

    w = V·diag(S/(e + λ/α))·Uᵀ·y,   γ = Σ α·e/(λ + α·e),
    λ ← (γ + 2λ₁)/(‖w‖² + 2λ₂),     α ← (n − γ + 2α₁)/(‖y − Xw‖² + 2α₂),

repeated until ``w`` settles (priors ``α₁ = α₂ = λ₁ = λ₂ = 10⁻⁶``). The predictive variance of
row ``x`` is ``1/α + xᵀ·V·diag(1/(λ + α·e))·Vᵀ·x``, and llm-d's quantile is
``mean + 1.28·std``. Example: mean 200 ms, noise std 40 ms, parameter std 5 ms →
``std = √(40² + 5²) = 40.3``, p90 = ``200 + 1.28·40.3 = 251.6`` ms.

**Unconstrained gradient boosting** (llm-d's default is XGBoost with a quantile objective):
LightGBM's built-in ``quantile`` objective at α = 0.9 on raw milliseconds, no monotone
constraints, no calibration, plus a least-squares booster for the mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np

from predictor.features import FeatureColumns, FeatureLayout, FloatArray, Target
from predictor.metrics import HeldOutMetrics, evaluate_arrays
from predictor.samples import RequestSamples

LLM_D_Z90 = 1.28
POOL = "*"


@dataclass(frozen=True)
class BayesianRidgeFit:
    """A fitted Bayesian ridge regression on standardised features."""

    x_mean: FloatArray
    x_scale: FloatArray
    y_mean: float
    coef: FloatArray
    alpha: float
    lam: float
    eig_vectors: FloatArray
    eig_values: FloatArray

    def predict(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Mean and standard deviation per row."""
        z = (matrix - self.x_mean) / self.x_scale
        mean = z @ self.coef + self.y_mean
        proj = z @ self.eig_vectors
        var = 1.0 / self.alpha + (proj**2 / (self.lam + self.alpha * self.eig_values)).sum(axis=1)
        return mean, np.sqrt(var)


def fit_bayesian_ridge(
    matrix: FloatArray,
    y: FloatArray,
    *,
    max_iter: int = 300,
    tol: float = 1e-3,
    prior: float = 1e-6,
) -> BayesianRidgeFit:
    """Evidence-maximising Bayesian ridge (see the module doc)."""
    x_mean = matrix.mean(axis=0)
    x_scale = matrix.std(axis=0)
    x_scale[x_scale == 0] = 1.0
    z = (matrix - x_mean) / x_scale
    y_mean = float(y.mean())
    yc = y - y_mean
    n = len(y)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    eig = s**2
    uty = u.T @ yc
    alpha = 1.0 / max(float(np.var(yc)), 1e-12)
    lam = 1.0
    coef = np.zeros(z.shape[1])
    for _ in range(max_iter):
        new = vt.T @ (s / (eig + lam / alpha) * uty)
        gamma = float(np.sum(alpha * eig / (lam + alpha * eig)))
        lam = (gamma + 2 * prior) / (float(np.sum(new**2)) + 2 * prior)
        rss = float(np.sum((yc - z @ new) ** 2))
        alpha = (n - gamma + 2 * prior) / (rss + 2 * prior)
        converged = float(np.sum(np.abs(new - coef))) < tol
        coef = new
        if converged:
            break
    return BayesianRidgeFit(x_mean, x_scale, y_mean, coef, alpha, lam, vt.T.copy(), eig)


def _design(columns: FeatureColumns, target: Target) -> FloatArray:
    layout = FeatureLayout.for_target(target)
    pod = np.eye(3)[columns.pod_type.astype(np.intp)]
    return np.column_stack([layout.matrix(columns), pod[:, 1:]])


def _groups(columns: FeatureColumns, per_accelerator: bool) -> dict[str, np.ndarray]:
    if not per_accelerator:
        return {POOL: np.arange(len(columns))}
    acc = np.asarray(columns.accelerator, dtype=object)
    return {a: np.flatnonzero(acc == a) for a in sorted(set(columns.accelerator))}


@dataclass(frozen=True)
class BayesianRidgeBaseline:
    """llm-d's Bayesian ridge: p90 = mean + 1.28·std, one fit per pool (or accelerator)."""

    fits: Mapping[tuple[Target, str], BayesianRidgeFit]
    per_accelerator: bool = False

    @classmethod
    def fit(cls, samples: RequestSamples, per_accelerator: bool = False) -> BayesianRidgeBaseline:
        fits: dict[tuple[Target, str], BayesianRidgeFit] = {}
        for target in Target:
            y_all = samples.actual(target)
            for name, group in _groups(samples.features, per_accelerator).items():
                rows = group[np.isfinite(y_all[group])]
                if rows.size < 10:
                    continue
                matrix = _design(samples.features.take(rows), target)
                fits[(target, name)] = fit_bayesian_ridge(matrix, y_all[rows])
        return cls(fits=fits, per_accelerator=per_accelerator)

    def predict(self, columns: FeatureColumns, target: Target) -> tuple[FloatArray, FloatArray]:
        """p90 and mean per row (NaN where no fit covers the row)."""
        p90 = np.full(len(columns), np.nan)
        mean = np.full(len(columns), np.nan)
        for name, rows in _groups(columns, self.per_accelerator).items():
            fit = self.fits.get((target, name))
            if fit is None or rows.size == 0:
                continue
            m, sd = fit.predict(_design(columns.take(rows), target))
            mean[rows], p90[rows] = m, m + LLM_D_Z90 * sd
        return p90, mean


@dataclass(frozen=True)
class BoostedQuantileBaseline:
    """Unconstrained, uncalibrated LightGBM quantile (p90) and mean models on raw ms."""

    boosters: Mapping[tuple[Target, str, str], lgb.Booster] = field(repr=False)
    per_accelerator: bool = False

    @classmethod
    def fit(
        cls,
        samples: RequestSamples,
        per_accelerator: bool = False,
        *,
        trees: int = 100,
        num_threads: int = 0,
        seed: int = 0,
    ) -> BoostedQuantileBaseline:
        common = {
            "learning_rate": 0.1,
            "num_leaves": 31,
            "verbosity": -1,
            "num_threads": num_threads or 1,
            "seed": seed,
            "deterministic": True,
        }
        boosters: dict[tuple[Target, str, str], lgb.Booster] = {}
        for target in Target:
            y_all = samples.actual(target)
            for name, group in _groups(samples.features, per_accelerator).items():
                rows = group[np.isfinite(y_all[group])]
                if rows.size < 10:
                    continue
                data = lgb.Dataset(_design(samples.features.take(rows), target), y_all[rows])
                for kind, params in (
                    ("p90", {"objective": "quantile", "alpha": 0.9}),
                    ("mean", {"objective": "regression"}),
                ):
                    boosters[(target, name, kind)] = lgb.train(
                        {**common, **params}, data, num_boost_round=trees
                    )
        return cls(boosters=boosters, per_accelerator=per_accelerator)

    def predict(self, columns: FeatureColumns, target: Target) -> tuple[FloatArray, FloatArray]:
        """p90 and mean per row (NaN where no fit covers the row)."""
        p90 = np.full(len(columns), np.nan)
        mean = np.full(len(columns), np.nan)
        for name, rows in _groups(columns, self.per_accelerator).items():
            key_q, key_m = (target, name, "p90"), (target, name, "mean")
            if key_q not in self.boosters or rows.size == 0:
                continue
            matrix = _design(columns.take(rows), target)
            p90[rows] = np.asarray(self.boosters[key_q].predict(matrix), dtype=np.float64)
            mean[rows] = np.asarray(self.boosters[key_m].predict(matrix), dtype=np.float64)
        return p90, mean


def evaluate_baseline(
    baseline: BayesianRidgeBaseline | BoostedQuantileBaseline, samples: RequestSamples
) -> list[HeldOutMetrics]:
    """The same held-out metrics as :func:`predictor.training.evaluate_model`."""
    out: list[HeldOutMetrics] = []
    for target in Target:
        p90, mean = baseline.predict(samples.features, target)
        out += evaluate_arrays(
            target, samples.features.accelerator, samples.actual(target), p90, mean
        )
    return out
