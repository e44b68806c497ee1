"""Monotone LightGBM fits for one target: quantiles (p50, p90, …) and the mean.

Why this module exists: LightGBM refuses ``monotone_constraints`` with its built-in ``quantile``
objective (its leaf "renewal" step would break them), yet we need both — monotone so capacity
bisection is exact, quantile so the gateway scores p90 headroom as llm-d does. The way through:

1. **Location.** Fit ``log(latency)`` with least squares and the monotone constraints (Newton steps,
   converges in a few dozen trees). Logs make TTFT, which spans 30 ms to several seconds across
   load, a well-scaled target, and quantiles commute with the monotone ``log``.
2. **Quantile correction.** Continue boosting the *same* booster with the pinball loss written as a
   custom objective (gradient ``−α`` when the observation lies above the prediction, ``1 − α``
   below, unit hessian), still under the constraints. A sum of trees that are each monotone is
   monotone, so the result is. One booster per quantile, so a prediction is one ``predict`` call.
3. **Mean.** Least squares on milliseconds, monotone, for MAPE/R² reporting and for Little's-law
   arithmetic in capacity planning.

Worked example of the pinball gradient at α = 0.9: an observation of ``log y = 4.0`` against a
prediction of ``3.5`` pulls the leaf up with gradient −0.9; one at ``3.0`` pushes it down with +0.1.
A leaf holding 90 rows above and 10 below gets ``−(90·(−0.9) + 10·0.1)/100 = 0.8`` times the
learning rate: it keeps rising until 90% of its rows lie below it, the 0.9 quantile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from predictor.features import FeatureLayout, FloatArray
from predictor.monotonicity import MonotonicityReport, ProbeGrid, check_monotone

#: Batches up to this many rows are predicted on one thread (see :func:`predict_rows`).
SINGLE_THREAD_ROWS = 4_096

#: Latencies are floored at this many ms before taking logs (a 0 ms TTFT is a measurement glitch).
MIN_LATENCY_MS = 1e-3


@dataclass(frozen=True, slots=True)
class Objective:
    """What one booster estimates: a quantile ``alpha`` or the mean."""

    kind: Literal["quantile", "mean"]
    alpha: float = 0.5

    @classmethod
    def quantile(cls, alpha: float) -> Objective:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {alpha}")
        return cls("quantile", alpha)

    @classmethod
    def mean(cls) -> Objective:
        return cls("mean", 0.0)

    @property
    def name(self) -> str:
        """``p90`` for the 0.9 quantile, ``p99.5`` for 0.995, ``mean`` for the mean."""
        if self.kind == "mean":
            return "mean"
        return f"p{self.alpha * 100:g}"


@dataclass(frozen=True, slots=True)
class BoostingParams:
    """LightGBM settings. Defaults are sized for ≤ 1M rows in under a minute on two cores."""

    location_trees: int = 60
    correction_trees: int = 40
    mean_trees: int = 80
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    max_bin: int = 63
    monotone: bool = True
    monotone_constraints_method: Literal["basic", "intermediate", "advanced"] = "intermediate"
    num_threads: int = 0
    seed: int = 0

    def threads_for(self, rows: int) -> int:
        """``num_threads``, or one thread when it is 0 (the default).

        LightGBM's OpenMP workers spin-wait: on a shared two-core machine a two-thread fit of
        1M rows took 31 s against 20.5 s on one thread, and small fits were up to a hundred
        times slower. Set ``num_threads`` on a dedicated host with cores to spare.
        """
        return self.num_threads if self.num_threads > 0 else 1

    def lightgbm_params(self, layout: FeatureLayout, rows: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "max_bin": self.max_bin,
            "num_threads": self.threads_for(rows),
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }
        if self.monotone:
            params["monotone_constraints"] = layout.monotone_constraints
            params["monotone_constraints_method"] = self.monotone_constraints_method
        return params


@dataclass(frozen=True)
class TargetBoosters:
    """The fitted boosters of one target: ``log``-space quantiles and the ms-space mean."""

    layout: FeatureLayout
    quantiles: tuple[float, ...]
    boosters: Mapping[str, lgb.Booster] = field(repr=False)
    n_train: int
    probe: ProbeGrid = field(repr=False)

    def check_monotone(self) -> tuple[str, MonotonicityReport]:
        """Probe every booster; the first failing (objective, report), else the last passing."""
        result: tuple[str, MonotonicityReport] | None = None
        for name, booster in self.boosters.items():

            def predict(m: FloatArray, b: lgb.Booster = booster) -> FloatArray:
                return predict_rows(b, m)

            report = check_monotone(predict, self.layout, self.probe)
            result = (name, report)
            if not report.ok:
                break
        if result is None:
            raise ValueError("no boosters to check")
        return result

    def predict_quantile_ms(self, matrix: FloatArray, quantile: float) -> FloatArray:
        """Uncalibrated quantile in ms for every row of ``matrix``."""
        return np.exp(self.predict_log_quantile(matrix, quantile))

    def predict_log_quantile(self, matrix: FloatArray, quantile: float) -> FloatArray:
        booster = self.boosters[Objective.quantile(quantile).name]
        return predict_rows(booster, matrix)

    def predict_mean_ms(self, matrix: FloatArray) -> FloatArray:
        booster = self.boosters[Objective.mean().name]
        return np.maximum(predict_rows(booster, matrix), 0.0)

    def model_strings(self) -> dict[str, str]:
        """Every booster as LightGBM's text model (what the registry writes to disk)."""
        return {name: b.model_to_string() for name, b in self.boosters.items()}

    @classmethod
    def from_model_strings(
        cls,
        layout: FeatureLayout,
        quantiles: tuple[float, ...],
        texts: Mapping[str, str],
        n_train: int,
        probe: ProbeGrid,
    ) -> TargetBoosters:
        """Inverse of :meth:`model_strings`; raises ``ValueError`` on a missing or bad model."""
        wanted = [Objective.quantile(q).name for q in quantiles] + [Objective.mean().name]
        missing = [w for w in wanted if w not in texts]
        if missing:
            raise ValueError(f"missing boosters {missing}")
        boosters: dict[str, lgb.Booster] = {}
        for name in wanted:
            check_model_text(texts[name], name)
            try:
                booster = lgb.Booster(model_str=texts[name])
            except lgb.basic.LightGBMError as exc:
                raise ValueError(f"booster {name}: {exc}") from exc
            if booster.num_feature() != len(layout.columns):
                raise ValueError(
                    f"booster {name} reads {booster.num_feature()} features, the layout has "
                    f"{len(layout.columns)}"
                )
            boosters[name] = booster
        if len(probe.sweeps) != len(layout.columns):
            raise ValueError("probe grid does not match the layout")
        return cls(
            layout=layout, quantiles=quantiles, boosters=boosters, n_train=n_train, probe=probe
        )


def predict_rows(booster: lgb.Booster, matrix: FloatArray) -> FloatArray:
    """``booster.predict``, single-threaded for small batches.

    LightGBM otherwise opens an OpenMP parallel region for any batch; on a busy two-core host a
    32-row call then sometimes waits a whole scheduler slice (10–20 ms) for a descheduled worker,
    which turned a 0.2 ms prediction into a 16 ms HTTP answer. One thread costs ~20 µs per call
    in parameter handling and never stalls.
    """
    if len(matrix) <= SINGLE_THREAD_ROWS:
        return np.asarray(booster.predict(matrix, num_threads=1), dtype=np.float64)
    return np.asarray(booster.predict(matrix), dtype=np.float64)


def check_model_text(text: str, name: str) -> None:
    """Refuse LightGBM model text whose tree blocks disagree with its ``tree_sizes`` header.

    LightGBM parses trees in parallel at the byte offsets that header gives; text edited by hand
    (or truncated) makes it abort the whole process instead of raising, so the offsets are
    checked here first. Raises ``ValueError``.
    """
    header = re.search(r"^tree_sizes=([0-9 ]*)$", text, re.MULTILINE)
    starts = [m.start() for m in re.finditer(r"^Tree=", text, re.MULTILINE)]
    end = text.find("end of trees")
    if header is None or end < 0:
        raise ValueError(f"booster {name}: not a LightGBM text model")
    sizes = [int(v) for v in header.group(1).split()]
    bounds = [*starts, end]
    actual = [b - a for a, b in pairwise(bounds)]
    if sizes != actual:
        raise ValueError(f"booster {name}: tree sizes do not match the tree_sizes header")


def pinball_objective(alpha: float) -> Callable[[FloatArray, lgb.Dataset], tuple[Any, Any]]:
    """The pinball loss as a LightGBM custom objective (gradient and unit hessian)."""

    def objective(preds: FloatArray, data: lgb.Dataset) -> tuple[Any, Any]:
        label = np.asarray(data.get_label(), dtype=np.float64)
        grad = np.where(label > preds, -alpha, 1.0 - alpha)
        return grad, np.ones_like(grad)

    return objective


def fit_target(
    matrix: FloatArray,
    actual_ms: FloatArray,
    layout: FeatureLayout,
    quantiles: tuple[float, ...],
    params: BoostingParams,
) -> TargetBoosters:
    """Fit the location, one quantile booster per ``quantiles`` entry, and the mean booster."""
    if len(matrix) != len(actual_ms):
        raise ValueError("matrix and targets differ in length")
    log_y = np.log(np.maximum(actual_ms, MIN_LATENCY_MS))
    base = params.lightgbm_params(layout, len(matrix))
    log_set = lgb.Dataset(
        matrix,
        label=log_y,
        feature_name=list(layout.columns),
        categorical_feature=layout.categorical_indices or "auto",
        params=base,
        free_raw_data=False,
    )
    location = lgb.train(
        {**base, "objective": "regression"}, log_set, num_boost_round=params.location_trees
    )
    boosters: dict[str, lgb.Booster] = {}
    for q in quantiles:
        boosters[Objective.quantile(q).name] = lgb.train(
            {**base, "objective": pinball_objective(q)},
            log_set,
            num_boost_round=params.correction_trees,
            init_model=location,
            keep_training_booster=False,
        )
        log_set.set_init_score(None)
    mean_set = lgb.Dataset(
        matrix,
        label=actual_ms,
        feature_name=list(layout.columns),
        categorical_feature=layout.categorical_indices or "auto",
        params=base,
        reference=log_set,
    )
    boosters[Objective.mean().name] = lgb.train(
        {**base, "objective": "regression"}, mean_set, num_boost_round=params.mean_trees
    )
    return TargetBoosters(
        layout=layout,
        quantiles=quantiles,
        boosters=boosters,
        n_train=len(log_y),
        probe=ProbeGrid.from_training(layout, matrix),
    )
