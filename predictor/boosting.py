"""Monotone LightGBM fits for one target: quantiles (p50, p90, …) and the mean.

Why this module exists: capacity bisection is exact only if predicted latency never falls as
load grows, and the gateway scores p90 headroom as llm-d does — so every quantile must be both
monotone in the load features and a good quantile, at light load where noise is wide *and* in
overload where TTFT is one long, almost deterministic queue. LightGBM refuses
``monotone_constraints`` with its built-in ``quantile`` objective, and continuing a monotone
booster with the pinball loss fails in overload: every correction tree must itself be monotone,
so the wide p90−median gap of light load is added to the saturated corner too (measured: 100 %
training coverage for rows with ≥ 32 requests waiting). The model here has three parts:

1. **Queueing term** (:class:`LinearBase`). A non-negative linear function of the load columns
   in milliseconds, ``b(x) = c₀ + Σ cⱼ·xⱼ`` with every ``cⱼ ≥ 0`` (non-negative least squares):
   queueing delay grows linearly with the work queued ahead, which piecewise-constant trees on
   ``log`` latency can only follow in steps. Example: ``c₀ = 118`` ms, 12.8 ms per waiting
   request and 0.031 ms per queued prompt token → 60 waiting with 150,000 tokens queued gives
   ``118 + 768 + 4,650 = 5,536`` ms. Per-(accelerator, role) models only: a pooled model
   serves accelerators whose per-request costs differ several-fold, so it has no such term.
2. **Location.** Least squares on ``log(latency) − log(b(x))``, monotone (Newton steps, a few
   dozen trees). The log location is ``ℓ(x) = log b(x) + trees(x)``: a sum of monotone terms.
3. **Quantile maps** (:class:`QuantileMap`). The ``q``-quantile is ``h_q(ℓ(x))`` with ``h_q``
   a non-decreasing piecewise-linear function fitted on the training rows: rows are sorted by
   ``ℓ``, cut into up to ``quantile_knots`` groups of at least 50 rows, and each group gives a
   knot (mean ``ℓ``, mean ``ℓ`` + the ``q``-quantile of ``log y − ℓ``); knots that would
   decrease are pooled (pool-adjacent-violators). A non-decreasing function of a monotone
   location is monotone, and the spread may shrink with load (the overload queue is nearly
   deterministic) without breaking anything. Example: knots ``(3.0, 3.5), (5.0, 5.2)``: a row
   with ``ℓ = 4.0`` gets ``log p90 = 3.5 + (4.0 − 3.0)·(5.2 − 3.5)/2 = 4.35`` (77 ms for a
   55 ms location); beyond the last knot the map keeps its last offset (slope 1).

The **mean** is least squares on milliseconds, monotone, for MAPE/R² reporting and for
Little's-law arithmetic in capacity planning. One ``predict`` call on the location booster gives
every quantile of a row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from scipy.optimize import nnls

from predictor.features import FeatureLayout, FloatArray
from predictor.monotonicity import MonotonicityReport, ProbeGrid, check_monotone

#: Batches up to this many rows are predicted on one thread (see :func:`predict_rows`).
SINGLE_THREAD_ROWS = 4_096

#: Latencies are floored at this many ms before taking logs (a 0 ms TTFT is a measurement glitch).
MIN_LATENCY_MS = 1e-3

#: The booster names of one target (the registry's file names use them).
LOCATION = "location"
MEAN = "mean"

#: A quantile map's groups hold at least this many training rows.
MIN_ROWS_PER_KNOT = 50


@dataclass(frozen=True, slots=True)
class Objective:
    """What one prediction estimates: a quantile ``alpha`` or the mean."""

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
            return MEAN
        return f"p{self.alpha * 100:g}"


@dataclass(frozen=True, slots=True)
class BoostingParams:
    """LightGBM settings. Defaults are sized for ≤ 1M rows in under a minute on two cores."""

    location_trees: int = 60
    mean_trees: int = 80
    quantile_knots: int = 40
    linear_base: bool = True
    """Fit the queueing term (layouts without categorical columns only; see :func:`fit_target`)."""
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
class LinearBase:
    """The queueing term ``b(x) = c₀ + Σ cⱼ·xⱼ`` (ms), ``cⱼ ≥ 0``, floored at ``floor_ms``.

    ``columns`` are indices into the layout's columns: those with a +1 monotone direction, so
    ``log b`` is non-decreasing in each (see the module doc).
    """

    columns: tuple[int, ...]
    intercept_ms: float
    slopes_ms: tuple[float, ...]
    floor_ms: float

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.slopes_ms):
            raise ValueError("one slope per column")
        if self.intercept_ms < 0 or any(s < 0 for s in self.slopes_ms) or self.floor_ms <= 0:
            raise ValueError("the queueing term needs non-negative slopes and a positive floor")

    def log_ms(self, matrix: FloatArray) -> FloatArray:
        """``log(max(b(x), floor))`` for every row of the layout's ``matrix``."""
        linear = self.intercept_ms + matrix[:, list(self.columns)] @ np.asarray(self.slopes_ms)
        out: FloatArray = np.log(np.maximum(linear, self.floor_ms))
        return out

    @classmethod
    def fit(cls, matrix: FloatArray, actual_ms: FloatArray, layout: FeatureLayout) -> LinearBase:
        """Non-negative least squares of ``actual_ms`` on the +1 columns (and an intercept).

        Solved on the normal equations (a handful of unknowns, whatever the row count):
        ``‖Ac − y‖²`` equals ``‖Lᵀc − L⁻¹Aᵀy‖²`` plus a constant when ``AᵀA = LLᵀ``.
        """
        columns = tuple(j for j, d in enumerate(layout.monotone_constraints) if d > 0)
        design = np.column_stack([np.ones(len(matrix)), matrix[:, columns]])
        scale = np.abs(design).max(axis=0)
        scale[~(scale > 0)] = 1.0
        scaled = design / scale
        gram = scaled.T @ scaled
        gram += np.eye(len(gram)) * 1e-9 * max(float(np.trace(gram)), 1.0)
        lower = np.linalg.cholesky(gram)
        coef, _ = nnls(lower.T, np.linalg.solve(lower, scaled.T @ actual_ms))
        coef = coef / scale
        floor = max(float(np.percentile(actual_ms, 1)), MIN_LATENCY_MS)
        return cls(
            columns=columns,
            intercept_ms=float(coef[0]),
            slopes_ms=tuple(float(c) for c in coef[1:]),
            floor_ms=floor,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "intercept_ms": self.intercept_ms,
            "slopes_ms": list(self.slopes_ms),
            "floor_ms": self.floor_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinearBase:
        return cls(
            columns=tuple(int(c) for c in data["columns"]),
            intercept_ms=float(data["intercept_ms"]),
            slopes_ms=tuple(float(s) for s in data["slopes_ms"]),
            floor_ms=float(data["floor_ms"]),
        )


def _pool_adjacent_violators(values: FloatArray, weights: FloatArray) -> FloatArray:
    """The weighted least-squares non-decreasing fit of ``values`` (in their order)."""
    blocks: list[tuple[float, float, int]] = []  # (mean, weight, count)
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append((v, w, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (v2, w2, c2), (v1, w1, c1) = blocks.pop(), blocks.pop()
            blocks.append(((v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2))
    out: FloatArray = np.repeat(
        np.array([b[0] for b in blocks], dtype=np.float64), [b[2] for b in blocks]
    )
    return out


@dataclass(frozen=True)
class QuantileMap:
    """A non-decreasing piecewise-linear map from the log location to a log quantile.

    ``knots_x`` strictly increase and ``knots_y`` never decrease; outside the knots the map
    keeps the offset of the nearest end (slope 1), so it is non-decreasing everywhere.
    """

    knots_x: FloatArray
    knots_y: FloatArray

    def __post_init__(self) -> None:
        x, y = self.knots_x, self.knots_y
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError("a quantile map needs matching, non-empty knot arrays")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("quantile map knots must be finite")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("quantile map knots must increase in x and never decrease in y")

    def __call__(self, location: FloatArray) -> FloatArray:
        x, y = self.knots_x, self.knots_y
        below = np.minimum(location - x[0], 0.0)
        above = np.maximum(location - x[-1], 0.0)
        return np.asarray(np.interp(location, x, y) + below + above, dtype=np.float64)

    @classmethod
    def fit(
        cls,
        location: FloatArray,
        log_actual: FloatArray,
        quantile: float,
        *,
        max_knots: int = 40,
        min_rows: int = MIN_ROWS_PER_KNOT,
    ) -> QuantileMap:
        """Knots from equal-count groups of rows sorted by location (see the module doc)."""
        order = np.argsort(location, kind="stable")
        loc, residual = location[order], (log_actual - location)[order]
        groups = max(1, min(max_knots, len(loc) // max(min_rows, 1)))
        bounds = np.linspace(0, len(loc), groups + 1).round().astype(np.intp)
        xs: list[float] = []
        ys: list[float] = []
        counts: list[float] = []
        for a, b in pairwise(bounds.tolist()):
            if b <= a:
                continue
            x = float(loc[a:b].mean())
            y = x + float(np.quantile(residual[a:b], quantile))
            if xs and x <= xs[-1]:  # tied locations: pool with the previous group
                n = counts[-1] + (b - a)
                xs[-1] = (xs[-1] * counts[-1] + x * (b - a)) / n
                ys[-1] = (ys[-1] * counts[-1] + y * (b - a)) / n
                counts[-1] = n
                continue
            xs.append(x)
            ys.append(y)
            counts.append(float(b - a))
        knots_y = _pool_adjacent_violators(np.asarray(ys), np.asarray(counts))
        return cls(knots_x=np.asarray(xs, dtype=np.float64), knots_y=knots_y)

    def to_json(self) -> dict[str, list[float]]:
        return {"x": self.knots_x.tolist(), "y": self.knots_y.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuantileMap:
        return cls(
            knots_x=np.asarray(data["x"], dtype=np.float64),
            knots_y=np.asarray(data["y"], dtype=np.float64),
        )


@dataclass(frozen=True)
class TargetBoosters:
    """The fitted model of one target: queueing term, log location, quantile maps, mean."""

    layout: FeatureLayout
    quantiles: tuple[float, ...]
    boosters: Mapping[str, lgb.Booster] = field(repr=False)
    maps: Mapping[float, QuantileMap] = field(repr=False)
    n_train: int
    probe: ProbeGrid = field(repr=False)
    base: LinearBase | None = None

    def objectives(self) -> dict[str, Callable[[FloatArray], FloatArray]]:
        """Every prediction this model makes, by objective name (``p50``, ``p90``, ``mean``)."""
        out: dict[str, Callable[[FloatArray], FloatArray]] = {}
        for q in self.quantiles:

            def quantile(matrix: FloatArray, q: float = q) -> FloatArray:
                return self.predict_log_quantile(matrix, q)

            out[Objective.quantile(q).name] = quantile
        out[MEAN] = self.predict_mean_ms
        return out

    def check_monotone(self) -> tuple[str, MonotonicityReport]:
        """Probe every objective; the first failing (objective, report), else the last passing."""
        result: tuple[str, MonotonicityReport] | None = None
        for name, predict in self.objectives().items():
            report = check_monotone(predict, self.layout, self.probe)
            result = (name, report)
            if not report.ok:
                break
        if result is None:
            raise ValueError("no objectives to check")
        return result

    def predict_log_location(self, matrix: FloatArray) -> FloatArray:
        """``ℓ(x) = log b(x) + trees(x)`` for every row."""
        location = predict_rows(self.boosters[LOCATION], matrix)
        if self.base is not None:
            location += self.base.log_ms(matrix)
        return location

    def predict_quantile_ms(self, matrix: FloatArray, quantile: float) -> FloatArray:
        """Uncalibrated quantile in ms for every row of ``matrix``."""
        return np.exp(self.predict_log_quantile(matrix, quantile))

    def predict_log_quantile(self, matrix: FloatArray, quantile: float) -> FloatArray:
        return self.maps[quantile](self.predict_log_location(matrix))

    def predict_log_quantiles(self, matrix: FloatArray) -> FloatArray:
        """Rows × ``quantiles`` log quantiles from one booster call."""
        location = self.predict_log_location(matrix)
        return np.column_stack([self.maps[q](location) for q in self.quantiles])

    def predict_mean_ms(self, matrix: FloatArray) -> FloatArray:
        return np.maximum(predict_rows(self.boosters[MEAN], matrix), 0.0)

    def model_strings(self) -> dict[str, str]:
        """Both boosters as LightGBM's text model (what the registry writes to disk)."""
        return {name: b.model_to_string() for name, b in self.boosters.items()}

    def parameters_json(self) -> dict[str, Any]:
        """The non-tree parts (queueing term, quantile maps) as JSON for the registry."""
        return {
            "base": None if self.base is None else self.base.to_json(),
            "maps": [{"quantile": q, **self.maps[q].to_json()} for q in self.quantiles],
        }

    @classmethod
    def from_model_strings(
        cls,
        layout: FeatureLayout,
        quantiles: tuple[float, ...],
        texts: Mapping[str, str],
        n_train: int,
        probe: ProbeGrid,
        parameters: Mapping[str, Any],
    ) -> TargetBoosters:
        """Inverse of :meth:`model_strings` and :meth:`parameters_json`; raises ``ValueError``
        on a missing or bad part."""
        missing = [w for w in (LOCATION, MEAN) if w not in texts]
        if missing:
            raise ValueError(f"missing boosters {missing}")
        boosters: dict[str, lgb.Booster] = {}
        for name in (LOCATION, MEAN):
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
        try:
            raw_base = parameters.get("base")
            base = None if raw_base is None else LinearBase.from_json(raw_base)
            maps = {float(m["quantile"]): QuantileMap.from_json(m) for m in parameters["maps"]}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed queueing term or quantile maps ({exc})") from exc
        if base is not None and any(not 0 <= c < len(layout.columns) for c in base.columns):
            raise ValueError("the queueing term reads columns the layout does not have")
        if sorted(maps) != sorted(quantiles):
            raise ValueError(f"quantile maps {sorted(maps)} do not match quantiles {quantiles}")
        return cls(
            layout=layout,
            quantiles=quantiles,
            boosters=boosters,
            maps=maps,
            n_train=n_train,
            probe=probe,
            base=base,
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


def fit_target(
    matrix: FloatArray,
    actual_ms: FloatArray,
    layout: FeatureLayout,
    quantiles: tuple[float, ...],
    params: BoostingParams,
) -> TargetBoosters:
    """Fit the queueing term, the location, one quantile map per ``quantiles`` entry, and the
    mean booster (see the module doc)."""
    if len(matrix) != len(actual_ms):
        raise ValueError("matrix and targets differ in length")
    actual_ms = np.maximum(actual_ms, MIN_LATENCY_MS)
    log_y = np.log(actual_ms)
    # One linear queue for several accelerators (a pooled layout) is wrong for all of them:
    # their per-request costs differ several-fold. On the synthetic pool a shared term cost 6 %
    # (TTFT) and 9 % (TPOT) pinball, so pooled models leave the queue to the trees.
    use_base = params.linear_base and not layout.categorical
    base = LinearBase.fit(matrix, actual_ms, layout) if use_base else None
    log_base = base.log_ms(matrix) if base is not None else np.zeros(len(matrix))
    lgb_params = params.lightgbm_params(layout, len(matrix))
    log_set = lgb.Dataset(
        matrix,
        label=log_y - log_base,
        feature_name=list(layout.columns),
        categorical_feature=layout.categorical_indices or "auto",
        params=lgb_params,
        free_raw_data=False,
    )
    location = lgb.train(
        {**lgb_params, "objective": "regression"}, log_set, num_boost_round=params.location_trees
    )
    fitted_location = predict_rows(location, matrix) + log_base
    maps = {
        q: QuantileMap.fit(fitted_location, log_y, q, max_knots=params.quantile_knots)
        for q in quantiles
    }
    mean_set = lgb.Dataset(
        matrix,
        label=actual_ms,
        feature_name=list(layout.columns),
        categorical_feature=layout.categorical_indices or "auto",
        params=lgb_params,
        reference=log_set,
    )
    mean = lgb.train(
        {**lgb_params, "objective": "regression"}, mean_set, num_boost_round=params.mean_trees
    )
    return TargetBoosters(
        layout=layout,
        quantiles=quantiles,
        boosters={LOCATION: location, MEAN: mean},
        maps=maps,
        n_train=len(log_y),
        probe=ProbeGrid.from_training(layout, matrix),
        base=base,
    )
