"""Window models: how a pod's p90 TTFT and p90 ITL respond to the load it carries, per
accelerator and role, learned from Prometheus windows; and the capacity they imply.

Why this module exists: the planner asks "how many requests per second can one replica of this
(accelerator, role) take before its p90 TTFT or ITL leaves the SLO?" Request-level models answer
that only through a queueing model of the pod's state (:mod:`predictor.capacity`); the window
dataset (:mod:`predictor.prometheus_dataset`) records the answer directly — the load a pod
carried over a window and the latency quantiles it delivered — for every pod a cluster runs.

Two stages per segment, both monotone LightGBM fits:

1. **State** — ``kv_cache_usage``, ``num_requests_running`` and ``num_requests_waiting`` as
   functions of the offered load (request rate, token rates, mean ISL/OSL, prefix hit ratio),
   non-decreasing in the rates: the learned counterpart of Little's law.
2. **Latency** — the window's p90 TTFT and p90 ITL from all nine features, non-decreasing in the
   rates and in KV use, running and waiting (TTFT also in ISL, and non-increasing in the prefix
   hit ratio). Each target is fitted like a request-level one (:mod:`predictor.boosting`:
   queueing term on the rates, log-space location, quantile maps); the targets are already p90s of
   requests, so the model's quantiles are quantiles *of the window p90* — the default
   ``serving_quantile`` 0.5 is its median, 0.9 a cautious planner's choice.

Each quantile is calibrated by split conformal prediction on 20% of the windows (chosen by a
hash of pod and window end, never fitted on), as request-level models are
(:mod:`predictor.calibration`): the offset is the ``⌈(n + 1)·q⌉``-th smallest
``log(actual) − log(predicted)``, a constant shift in log space that keeps the model monotone.
Every fit is probed with :func:`predictor.monotonicity.check_monotone`; a segment with fewer than
``min_rows`` windows, fewer than ``min_load_levels`` distinct request rates, or a fit that fails
the probe is ``NotReady``.

**Capacity.** At a rate ``λ`` with mix (``isl``, ``osl``, ``p``) the offered-load features are
``(λ, λ·isl, λ·osl, isl, osl, p)``, the state model fills KV/running/waiting, and the latency
model answers. A composition of non-decreasing functions is non-decreasing, so the rates meeting
the SLO form an interval ``[0, λ*]`` and bisection finds ``λ*``. Trees do not extrapolate, so the
search stops at the highest per-pod rate the segment was trained on: an SLO still met there is
reported as ``observed_range`` (capacity is *at least* that). Example: trained up to 20 req/s per
pod, ISL 1,000, OSL 200, SLO 500 ms / 30 ms; if p90 TTFT first exceeds 500 ms at 14.2 req/s the
answer is ``14.2, ttft``; 12 halvings from 20 req/s bring the bracket under 0.005 req/s.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from predictor.boosting import BoostingParams, TargetBoosters, fit_target, predict_rows
from predictor.calibration import conformal_quantile
from predictor.features import FeatureLayout, FloatArray, Target
from predictor.metrics import coverage, mape, pinball_loss
from predictor.monotonicity import ProbeGrid, check_monotone
from predictor.outcomes import NotReady, NotReadyReason
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WINDOW_FEATURES, WindowField

F = WindowField

#: Offered load: what a planner can state for a rate it has not seen yet.
LOAD_INPUTS: Final[tuple[WindowField, ...]] = (
    F.REQUEST_RATE,
    F.PROMPT_TOKENS_RATE,
    F.GENERATION_TOKENS_RATE,
    F.MEAN_INPUT_TOKENS,
    F.MEAN_OUTPUT_TOKENS,
    F.PREFIX_CACHE_HIT_RATIO,
)
#: The pod state the load produces (learned from the load by the state models).
STATE_OUTPUTS: Final[tuple[WindowField, ...]] = (
    F.KV_CACHE_USAGE,
    F.NUM_REQUESTS_RUNNING,
    F.NUM_REQUESTS_WAITING,
)
_RATES: Final = (F.REQUEST_RATE, F.PROMPT_TOKENS_RATE, F.GENERATION_TOKENS_RATE)
_LOAD_AND_STATE: Final = (*_RATES, *STATE_OUTPUTS)

#: Monotone directions of the latency targets (absent = unconstrained).
LATENCY_DIRECTIONS: Final[Mapping[WindowField, Mapping[WindowField, int]]] = {
    F.TTFT_S: {
        **dict.fromkeys(_LOAD_AND_STATE, 1),
        F.MEAN_INPUT_TOKENS: 1,
        F.PREFIX_CACHE_HIT_RATIO: -1,
    },
    F.ITL_S: dict.fromkeys(_LOAD_AND_STATE, 1),
}
#: Monotone directions of the state models: more offered load, more state.
STATE_DIRECTIONS: Final[Mapping[WindowField, int]] = dict.fromkeys(_RATES, 1)

#: Which request-level target a window target corresponds to (labels in layouts and messages).
_TARGET_OF: Final[Mapping[WindowField, Target]] = {F.TTFT_S: Target.TTFT, F.ITL_S: Target.TPOT}


@dataclass(frozen=True, slots=True)
class WindowLayout(FeatureLayout):
    """A :class:`FeatureLayout` over window columns with explicit monotone directions.

    Reusing the request-level layout type lets window fits go through the same boosting code
    and the same post-fit probe (:func:`predictor.monotonicity.check_monotone`). Window matrices
    are built by :func:`window_matrix`, not by :meth:`FeatureLayout.matrix`.
    """

    directions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.directions) != len(self.columns):
            raise ValueError("one monotone direction per column")

    @property
    def monotone_constraints(self) -> list[int]:
        return list(self.directions)

    @classmethod
    def of(
        cls, target: Target, columns: tuple[WindowField, ...], directions: Mapping[WindowField, int]
    ) -> WindowLayout:
        return cls(
            target=target,
            columns=tuple(c.value for c in columns),
            directions=tuple(directions.get(c, 0) for c in columns),
        )


def window_matrix(dataset: WindowDataset, columns: tuple[WindowField, ...]) -> FloatArray:
    """The rows × ``columns`` float matrix of ``dataset`` (C-contiguous)."""
    return np.ascontiguousarray(np.column_stack([dataset.feature(c) for c in columns]))


def _window_params() -> BoostingParams:
    return BoostingParams(
        location_trees=60,
        mean_trees=60,
        num_leaves=15,
        min_data_in_leaf=10,
    )


@dataclass(frozen=True)
class WindowModelConfig:
    """What to fit.

    A segment is ready with at least ``min_rows`` windows spanning at least ``min_load_levels``
    distinct request rates (a pool held at one load teaches nothing about load).
    ``calibration_fraction`` of the windows (chosen by hash) is kept out of the fit and sets the
    split-conformal offsets of every quantile (0 disables calibration).
    """

    quantiles: tuple[float, ...] = (0.5, 0.9)
    serving_quantile: float = 0.5
    min_rows: int = 100
    min_load_levels: int = 10
    calibration_fraction: float = 0.2
    state_trees: int = 80
    boosting: BoostingParams = field(default_factory=_window_params)
    check_monotone: bool = True

    def __post_init__(self) -> None:
        qs = tuple(sorted(set(self.quantiles)))
        if not qs or any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError(f"quantiles must lie in (0, 1), got {self.quantiles}")
        if self.serving_quantile not in qs:
            raise ValueError(f"serving quantile {self.serving_quantile} is not in {qs}")
        if not 0.0 <= self.calibration_fraction < 0.5:
            raise ValueError("calibration_fraction must lie in [0, 0.5)")
        if self.min_rows < 1 or self.state_trees < 1 or self.min_load_levels < 2:
            raise ValueError("need min_rows ≥ 1, state_trees ≥ 1 and min_load_levels ≥ 2")
        object.__setattr__(self, "quantiles", qs)


@dataclass(frozen=True)
class StateModel:
    """One monotone least-squares booster from offered load to one state quantity."""

    output: WindowField
    layout: WindowLayout
    booster: lgb.Booster = field(repr=False)
    probe: ProbeGrid = field(repr=False)

    def predict(self, load: FloatArray) -> FloatArray:
        """The state (clipped to its range: KV in [0, 1], counts ≥ 0; clipping keeps order)."""
        raw = predict_rows(self.booster, load)
        upper = 1.0 if self.output is F.KV_CACHE_USAGE else math.inf
        return np.clip(raw, 0.0, upper)


@dataclass(frozen=True, slots=True)
class WindowPoint:
    """A pod's predicted state and window latency quantiles (seconds) at one offered load."""

    rate_rps: float
    kv_cache_usage: float
    num_requests_running: float
    num_requests_waiting: float
    ttft_s: float
    itl_s: float


@dataclass(frozen=True)
class WindowSegment:
    """The fits of one (accelerator, role): state models, latency boosters, training range."""

    accelerator: str
    role: str
    state: Mapping[WindowField, StateModel]
    latency: Mapping[WindowField, TargetBoosters]
    n_rows: int
    rate_range: tuple[float, float]
    log_offsets: Mapping[tuple[WindowField, float], float] = field(default_factory=dict)

    def latency_ms(self, target: WindowField, matrix: FloatArray, quantile: float) -> FloatArray:
        """Calibrated ``quantile`` of the window ``target`` (ms) for rows of all nine features."""
        log_pred = self.latency[target].predict_log_quantile(matrix, quantile)
        return np.exp(log_pred + self.log_offsets.get((target, quantile), 0.0))

    def point(
        self, rate: float, isl: float, osl: float, prefix_hit: float, quantile: float
    ) -> WindowPoint:
        """State and latency at ``rate`` req/s per pod for the mix (see the module doc)."""
        load_row = dict(
            zip(
                LOAD_INPUTS,
                (rate, rate * isl, rate * osl, isl, osl, prefix_hit),
                strict=True,
            )
        )
        load = np.array([[load_row[c] for c in LOAD_INPUTS]], dtype=np.float64)
        full = dict(load_row)
        for name, model in self.state.items():
            full[name] = float(model.predict(load)[0])
        row = np.array([[full[c] for c in WINDOW_FEATURES]], dtype=np.float64)
        ttft_ms = float(self.latency_ms(F.TTFT_S, row, quantile)[0])
        itl_ms = float(self.latency_ms(F.ITL_S, row, quantile)[0])
        return WindowPoint(
            rate_rps=rate,
            kv_cache_usage=full[F.KV_CACHE_USAGE],
            num_requests_running=full[F.NUM_REQUESTS_RUNNING],
            num_requests_waiting=full[F.NUM_REQUESTS_WAITING],
            ttft_s=ttft_ms / 1000.0,
            itl_s=itl_ms / 1000.0,
        )


@dataclass(frozen=True)
class WindowLatencyModel:
    """Window models for every (accelerator, role) seen in training, or why one is not ready."""

    config: WindowModelConfig
    segments: Mapping[tuple[str, str], WindowSegment | NotReady]
    window_s: float
    target_quantile: float

    def segment(self, accelerator: str, role: str = "aggregated") -> WindowSegment | NotReady:
        """The fits for (accelerator, role), or why there are none."""
        found = self.segments.get((accelerator, role))
        if found is None:
            known = ", ".join(f"{a}/{r}" for a, r in self.segments) or "none"
            return NotReady(
                NotReadyReason.UNKNOWN_SEGMENT,
                f"no window model for {accelerator}/{role} (known: {known})",
            )
        return found

    @property
    def is_ready(self) -> bool:
        return any(isinstance(s, WindowSegment) for s in self.segments.values())

    def predict(
        self, dataset: WindowDataset, quantile: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Predicted window TTFT and ITL quantiles (s) for every row; NaN where not ready."""
        q = self.config.serving_quantile if quantile is None else quantile
        ttft = np.full(len(dataset), np.nan)
        itl = np.full(len(dataset), np.nan)
        for (acc, role), rows in dataset.segments().items():
            seg = self.segment(acc, role)
            if isinstance(seg, NotReady):
                continue
            matrix = window_matrix(dataset.take(rows), WINDOW_FEATURES)
            ttft[rows] = seg.latency_ms(F.TTFT_S, matrix, q) / 1000.0
            itl[rows] = seg.latency_ms(F.ITL_S, matrix, q) / 1000.0
        return ttft, itl


def _fit_state(
    output: WindowField, load: FloatArray, y: FloatArray, config: WindowModelConfig
) -> StateModel:
    layout = WindowLayout.of(Target.TPOT, LOAD_INPUTS, STATE_DIRECTIONS)
    params = config.boosting.lightgbm_params(layout, len(y))
    data = lgb.Dataset(load, label=y, feature_name=list(layout.columns), params=params)
    booster = lgb.train(
        {**params, "objective": "regression"}, data, num_boost_round=config.state_trees
    )
    return StateModel(output, layout, booster, ProbeGrid.from_training(layout, load))


def _fit_segment(
    dataset: WindowDataset, accelerator: str, role: str, config: WindowModelConfig
) -> WindowSegment | NotReady:
    label = f"{accelerator}/{role}"
    if len(dataset) < config.min_rows:
        return NotReady(
            NotReadyReason.TOO_FEW_SAMPLES,
            f"{label}: {len(dataset)} windows, needs {config.min_rows}",
        )
    levels = np.unique(dataset.feature(F.REQUEST_RATE)).size
    if levels < config.min_load_levels:
        return NotReady(
            NotReadyReason.TOO_FEW_SAMPLES,
            f"{label}: {levels} distinct request rates, needs {config.min_load_levels} "
            "(a model of load needs load that varies)",
        )
    held_out = calibration_rows(dataset, config.calibration_fraction)
    fit = dataset.take(~held_out)
    load = window_matrix(fit, LOAD_INPUTS)
    matrix = window_matrix(fit, WINDOW_FEATURES)
    latency: dict[WindowField, TargetBoosters] = {}
    try:
        state = {out: _fit_state(out, load, fit.feature(out), config) for out in STATE_OUTPUTS}
        for target, directions in LATENCY_DIRECTIONS.items():
            layout = WindowLayout.of(_TARGET_OF[target], WINDOW_FEATURES, directions)
            y_ms = fit.target(target) * 1000.0
            latency[target] = fit_target(matrix, y_ms, layout, config.quantiles, config.boosting)
    except lgb.basic.LightGBMError as exc:
        return NotReady(NotReadyReason.NO_MODEL, f"{label}: LightGBM could not fit ({exc})")
    offsets = _conformal_offsets(latency, dataset.take(held_out), config.quantiles)
    if config.check_monotone:
        for out, model in state.items():

            def predict(m: FloatArray, b: lgb.Booster = model.booster) -> FloatArray:
                return predict_rows(b, m)

            report = check_monotone(predict, model.layout, model.probe)
            if not report.ok:
                return NotReady(
                    NotReadyReason.NOT_MONOTONE, f"{label} state {out.value}: {report.describe()}"
                )
        for target, boosters in latency.items():
            objective, report = boosters.check_monotone()
            if not report.ok:
                return NotReady(
                    NotReadyReason.NOT_MONOTONE,
                    f"{label} {target.value} {objective}: {report.describe()}",
                )
    rates = dataset.feature(F.REQUEST_RATE)
    return WindowSegment(
        accelerator=accelerator,
        role=role,
        state=state,
        latency=latency,
        n_rows=len(dataset),
        rate_range=(float(rates.min()), float(rates.max())),
        log_offsets=offsets,
    )


def calibration_rows(dataset: WindowDataset, fraction: float) -> npt.NDArray[np.bool_]:
    """A deterministic ``fraction`` of rows, chosen by a hash of (pod, window end), held out
    for calibration (the same rows whatever else the dataset holds)."""
    if fraction <= 0:
        return np.zeros(len(dataset), dtype=np.bool_)
    cut = round(fraction * 10_000)
    return np.array(
        [
            zlib.crc32(f"{pod}|{t:.3f}".encode()) % 10_000 < cut
            for pod, t in zip(dataset.pod, dataset.window_end_s.tolist(), strict=True)
        ],
        dtype=np.bool_,
    )


def _conformal_offsets(
    latency: Mapping[WindowField, TargetBoosters],
    held_out: WindowDataset,
    quantiles: tuple[float, ...],
) -> dict[tuple[WindowField, float], float]:
    """Split-conformal log offsets per (target, quantile); 0 where too few rows to calibrate."""
    out: dict[tuple[WindowField, float], float] = {}
    matrix = window_matrix(held_out, WINDOW_FEATURES) if len(held_out) else None
    for target, boosters in latency.items():
        for q in quantiles:
            offset = 0.0
            if matrix is not None:
                scores = np.log(np.maximum(held_out.target(target) * 1000.0, 1e-3))
                scores = scores - boosters.predict_log_quantile(matrix, q)
                found = conformal_quantile(scores, q)
                offset = found if math.isfinite(found) else 0.0
            out[(target, q)] = offset
    return out


def fit_window_model(
    dataset: WindowDataset, config: WindowModelConfig | None = None
) -> WindowLatencyModel:
    """Fit every (accelerator, role) of ``dataset`` (see the module doc)."""
    config = config or WindowModelConfig()
    segments: dict[tuple[str, str], WindowSegment | NotReady] = {}
    for (acc, role), rows in dataset.segments().items():
        segments[(acc, role)] = _fit_segment(dataset.take(rows), acc, role, config)
    return WindowLatencyModel(
        config=config,
        segments=segments,
        window_s=dataset.window_s,
        target_quantile=dataset.quantile,
    )


@dataclass(frozen=True, slots=True)
class WindowAccuracy:
    """Held-out accuracy of one target on one segment (``coverage``/``pinball`` of the 0.9
    quantile of the window p90 when the model has it, ``mape`` of the serving quantile)."""

    target: WindowField
    segment: str
    n: int
    mape: float
    coverage_q90: float
    pinball_q90: float


def evaluate_window_model(
    model: WindowLatencyModel, dataset: WindowDataset
) -> list[WindowAccuracy]:
    """Accuracy per target and segment on rows the model did not train on."""
    out: list[WindowAccuracy] = []
    has_q90 = 0.9 in model.config.quantiles
    served = model.predict(dataset)
    upper = model.predict(dataset, 0.9) if has_q90 else (served[0] * np.nan, served[1] * np.nan)
    for (acc, role), rows in dataset.segments().items():
        for j, target in enumerate((F.TTFT_S, F.ITL_S)):
            y = dataset.target(target)[rows]
            pred, high = served[j][rows], upper[j][rows]
            ok = np.isfinite(pred)
            out.append(
                WindowAccuracy(
                    target=target,
                    segment=f"{acc}/{role}",
                    n=int(ok.sum()),
                    mape=mape(y[ok], pred[ok]),
                    coverage_q90=coverage(y[ok], high[ok]) if has_q90 else math.nan,
                    pinball_q90=pinball_loss(y[ok], high[ok], 0.9) if has_q90 else math.nan,
                )
            )
    return out


# ---------------------------------------------------------------------- capacity


class CapacityBound(StrEnum):
    """What ends the search for a window model's capacity."""

    TTFT = "ttft"
    ITL = "itl"
    OBSERVED_RANGE = "observed_range"
    """The SLO holds at the highest rate in the training data; capacity is at least that."""


@dataclass(frozen=True, slots=True)
class WindowCapacity:
    """The largest per-pod rate meeting the SLO, what bounds it, and the state there."""

    rate_rps: float
    limited_by: CapacityBound
    at_capacity: WindowPoint
    iterations: int


def _violation(point: WindowPoint, slo_ttft_s: float, slo_itl_s: float) -> CapacityBound | None:
    if not point.ttft_s <= slo_ttft_s:
        return CapacityBound.TTFT
    if not point.itl_s <= slo_itl_s:
        return CapacityBound.ITL
    return None


def capacity_at_slo(
    model: WindowLatencyModel,
    isl: float,
    osl: float,
    prefix_hit: float,
    slo_ttft_s: float,
    slo_itl_s: float,
    *,
    accelerator: str,
    role: str = "aggregated",
    quantile: float | None = None,
    rel_tolerance: float = 1e-3,
    max_iterations: int = 60,
) -> WindowCapacity | NotReady:
    """The largest per-pod request rate whose predicted window p90 TTFT and ITL meet the SLO
    (seconds), by bisection between 0 and the highest trained rate (module doc).

    ``quantile`` picks which quantile of the window p90 to hold to the SLO (default: the
    model's serving quantile, the median). A rate of 0 means even a trickle misses the SLO.
    """
    if isl < 0 or osl < 1 or not 0.0 <= prefix_hit <= 1.0:
        return NotReady(NotReadyReason.INVALID_INPUT, "need isl ≥ 0, osl ≥ 1, prefix in [0, 1]")
    seg = model.segment(accelerator, role)
    if isinstance(seg, NotReady):
        return seg
    q = model.config.serving_quantile if quantile is None else quantile
    if q not in model.config.quantiles:
        return NotReady(
            NotReadyReason.NO_MODEL, f"no {q} quantile (the model has {model.config.quantiles})"
        )

    def point(rate: float) -> WindowPoint:
        return seg.point(rate, isl, osl, prefix_hit, q)

    hi = seg.rate_range[1]
    hi_point = point(hi)
    limit = _violation(hi_point, slo_ttft_s, slo_itl_s)
    if limit is None:
        return WindowCapacity(hi, CapacityBound.OBSERVED_RANGE, hi_point, 0)
    lo = 0.0
    lo_point = point(lo)
    first = _violation(lo_point, slo_ttft_s, slo_itl_s)
    if first is not None:
        return WindowCapacity(0.0, first, lo_point, 0)
    iterations = 0
    while hi - lo > rel_tolerance * hi and iterations < max_iterations:
        iterations += 1
        mid = 0.5 * (lo + hi)
        mid_point = point(mid)
        broken = _violation(mid_point, slo_ttft_s, slo_itl_s)
        if broken is None:
            lo, lo_point = mid, mid_point
        else:
            hi, limit = mid, broken
    return WindowCapacity(lo, limit, lo_point, iterations)


__all__ = [
    "LATENCY_DIRECTIONS",
    "LOAD_INPUTS",
    "STATE_DIRECTIONS",
    "STATE_OUTPUTS",
    "CapacityBound",
    "StateModel",
    "WindowAccuracy",
    "WindowCapacity",
    "WindowLatencyModel",
    "WindowLayout",
    "WindowModelConfig",
    "WindowPoint",
    "WindowSegment",
    "calibration_rows",
    "capacity_at_slo",
    "evaluate_window_model",
    "fit_window_model",
    "window_matrix",
]
