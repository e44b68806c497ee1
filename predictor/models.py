"""Request-level latency models: TTFT and TPOT per (accelerator, role), or pooled.

Why this module exists: llm-d's predictor assumes one homogeneous pool; its p90 coverage drops
from ~90% to ~62% when one server answers for several. We learn one model per
(accelerator, role) segment — or one pooled model with the accelerator and pod type as
categorical features, whichever held-out data favours — and answer ``Prediction | NotReady`` for
every request: a segment with too few samples or a model that fails its monotonicity check
says so instead of guessing.

Layouts:

* ``per_segment`` — a TTFT and a TPOT model for every (accelerator, pod type) seen in training,
  reading only the numeric llm-d features. Small segments are ``NotReady(TooFewSamples)``.
* ``pooled`` — one TTFT and one TPOT model over all rows, with ``pod_type`` and ``accelerator``
  appended as categorical columns; an accelerator it never saw is ``NotReady``.

Every model carries a queueing term, a log-location booster with one quantile map per
configured quantile (default p50 and p90) and a booster for the mean (see
:mod:`predictor.boosting`), all monotone in the load features; conformal offsets per accelerator
and waiting-queue stratum (see :mod:`predictor.calibration`) are applied at prediction time, and
the quantiles of one row are sorted so p50 ≤ p90 always holds (sorting keeps each monotone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from predictor.boosting import BoostingParams, Objective, TargetBoosters, fit_target
from predictor.calibration import ConformalCalibration
from predictor.features import (
    NUM_REQUEST_WAITING,
    POD_TYPE_BY_CODE,
    FeatureColumns,
    FeatureLayout,
    FloatArray,
    PodType,
    Target,
)
from predictor.outcomes import LatencyQuantiles, NotReady, NotReadyReason, Prediction
from predictor.samples import RequestSamples

IntArray = npt.NDArray[np.intp]


class Layout(StrEnum):
    """How rows are split into models."""

    PER_SEGMENT = "per_segment"
    POOLED = "pooled"


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """Which model serves a row: an accelerator and a role, or ``*``/``*`` when pooled."""

    accelerator: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.accelerator or '(unlabelled)'}/{self.role}"


POOLED_KEY = SegmentKey("*", "*")


@dataclass(frozen=True)
class ModelConfig:
    """What to fit; ``serving_quantile`` is what ``/predict`` returns as ``ttft_ms``/``tpot_ms``."""

    quantiles: tuple[float, ...] = (0.5, 0.9)
    serving_quantile: float = 0.9
    layout: Layout = Layout.PER_SEGMENT
    boosting: BoostingParams = field(default_factory=BoostingParams)
    min_samples: int = 200
    check_monotone: bool = True

    def __post_init__(self) -> None:
        qs = tuple(sorted(set(self.quantiles)))
        if not qs or any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError(f"quantiles must lie in (0, 1), got {self.quantiles}")
        if self.serving_quantile not in qs:
            raise ValueError(f"serving quantile {self.serving_quantile} is not in {qs}")
        if self.min_samples < 1:
            raise ValueError("min_samples must be ≥ 1")
        object.__setattr__(self, "quantiles", qs)


TargetFit = TargetBoosters | NotReady


@dataclass(frozen=True)
class ServingBatch:
    """Serving-quantile TTFT/TPOT (ms) per row; NaN where ``failures`` holds the reason."""

    ttft_ms: FloatArray
    tpot_ms: FloatArray
    failures: Mapping[int, NotReady]


@dataclass(frozen=True)
class LatencyModel:
    """Fitted TTFT/TPOT models for every segment, plus their conformal calibration."""

    config: ModelConfig
    accelerators: tuple[str, ...]
    segments: Mapping[SegmentKey, Mapping[Target, TargetFit]]
    calibration: ConformalCalibration = field(default_factory=ConformalCalibration.identity)

    # ------------------------------------------------------------------ status

    @property
    def default_accelerator(self) -> str | None:
        """The accelerator assumed for requests that name none (only when training saw one)."""
        return self.accelerators[0] if len(self.accelerators) == 1 else None

    def segment_ready(self, key: SegmentKey) -> NotReady | None:
        """``None`` if both targets of ``key`` can predict, else the first reason they cannot."""
        fits = self.segments.get(key)
        if fits is None:
            return NotReady(NotReadyReason.UNKNOWN_SEGMENT, f"no model for {key.label}")
        for target in Target:
            fit = fits.get(target)
            if fit is None:
                return NotReady(NotReadyReason.NO_MODEL, f"{key.label}: no {target.value} model")
            if isinstance(fit, NotReady):
                return fit
        return None

    @property
    def is_ready(self) -> bool:
        """True when at least one segment predicts both targets."""
        return any(self.segment_ready(k) is None for k in self.segments)

    def with_calibration(self, calibration: ConformalCalibration) -> LatencyModel:
        return replace(self, calibration=calibration)

    # ------------------------------------------------------------------ routing

    def resolve(self, accelerator: str, pod_type: PodType) -> SegmentKey | NotReady:
        """The segment that serves a request, or why none does."""
        acc = accelerator or self.default_accelerator or ""
        if acc not in self.accelerators:
            known = ", ".join(self.accelerators) or "none"
            return NotReady(
                NotReadyReason.UNKNOWN_ACCELERATOR,
                f"accelerator {acc or '(none given)'!r} has no model (known: {known})",
            )
        if self.config.layout is Layout.POOLED:
            return POOLED_KEY
        return SegmentKey(acc, pod_type.role)

    def _route(
        self, columns: FeatureColumns
    ) -> tuple[dict[SegmentKey, IntArray], dict[int, NotReady], tuple[str, ...]]:
        """Rows grouped by ready segment; failures by row; each row's resolved accelerator."""
        default = self.default_accelerator or ""
        accs = tuple(a or default for a in columns.accelerator)
        by_pair: dict[tuple[str, int], list[int]] = {}
        for i, pair in enumerate(zip(accs, columns.pod_type.tolist(), strict=True)):
            by_pair.setdefault(pair, []).append(i)
        groups: dict[SegmentKey, list[IntArray]] = {}
        failures: dict[int, NotReady] = {}
        for (acc, code), rows in by_pair.items():
            key = self.resolve(acc, POD_TYPE_BY_CODE[code])
            problem = key if isinstance(key, NotReady) else self.segment_ready(key)
            if problem is not None:
                failures.update(dict.fromkeys(rows, problem))
                continue
            assert isinstance(key, SegmentKey)
            groups.setdefault(key, []).append(np.asarray(rows, dtype=np.intp))
        merged = {k: np.sort(np.concatenate(v)) for k, v in groups.items()}
        return merged, failures, accs

    def _boosters(self, key: SegmentKey, target: Target) -> TargetBoosters:
        fit = self.segments[key][target]
        assert isinstance(fit, TargetBoosters)
        return fit

    # ------------------------------------------------------------------ inference

    def predict_serving(self, columns: FeatureColumns) -> ServingBatch:
        """Calibrated serving-quantile TTFT and TPOT for every row: the gateway's hot path."""
        n = len(columns)
        out = {t: np.full(n, np.nan) for t in Target}
        groups, failures, accs = self._route(columns)
        q = self.config.serving_quantile
        for key, rows in groups.items():
            part = columns if len(rows) == n else columns.take(rows)
            part_accs = accs if len(rows) == n else tuple(accs[i] for i in rows.tolist())
            waiting = part.values[NUM_REQUEST_WAITING]
            for target in Target:
                boosters = self._boosters(key, target)
                log_pred = boosters.predict_log_quantile(boosters.layout.matrix(part), q)
                log_pred += self.calibration.offsets(target, q, part_accs, waiting)
                out[target][rows] = np.exp(log_pred)
        return ServingBatch(ttft_ms=out[Target.TTFT], tpot_ms=out[Target.TPOT], failures=failures)

    def predict_log_quantiles(
        self, columns: FeatureColumns, target: Target, *, calibrated: bool = True
    ) -> tuple[FloatArray, tuple[str, ...]]:
        """log-ms quantiles (rows × quantiles, NaN where not ready) and each row's accelerator.

        Columns follow ``config.quantiles``; calibrated rows are sorted ascending per row.
        """
        qs = self.config.quantiles
        out = np.full((len(columns), len(qs)), np.nan)
        groups, _, accs = self._route(columns)
        for key, rows in groups.items():
            part = columns.take(rows)
            part_accs = tuple(accs[i] for i in rows.tolist())
            boosters = self._boosters(key, target)
            log_q = boosters.predict_log_quantiles(boosters.layout.matrix(part))
            if calibrated:
                waiting = part.values[NUM_REQUEST_WAITING]
                for j, q in enumerate(qs):
                    log_q[:, j] += self.calibration.offsets(target, q, part_accs, waiting)
            out[rows] = log_q
        if calibrated:
            out.sort(axis=1)
        return out, accs

    def predict_mean_ms(self, columns: FeatureColumns, target: Target) -> FloatArray:
        """Mean latency (ms) per row; NaN where not ready."""
        out = np.full(len(columns), np.nan)
        groups, _, _ = self._route(columns)
        for key, rows in groups.items():
            boosters = self._boosters(key, target)
            out[rows] = boosters.predict_mean_ms(boosters.layout.matrix(columns.take(rows)))
        return out

    def predict(self, columns: FeatureColumns) -> list[Prediction | NotReady]:
        """Every quantile and the mean of both targets, per row, or why not."""
        _, failures, accs = self._route(columns)
        quantiles = {t: self.predict_log_quantiles(columns, t)[0] for t in Target}
        means = {t: self.predict_mean_ms(columns, t) for t in Target}
        qs = self.config.quantiles
        out: list[Prediction | NotReady] = []
        for i in range(len(columns)):
            failure = failures.get(i)
            if failure is not None:
                out.append(failure)
                continue
            per_target = {
                t: LatencyQuantiles(
                    quantiles=qs,
                    values_ms=tuple(float(v) for v in np.exp(quantiles[t][i])),
                    mean_ms=float(means[t][i]),
                )
                for t in Target
            }
            out.append(
                Prediction(
                    accelerator=accs[i],
                    pod_type=POD_TYPE_BY_CODE[int(columns.pod_type[i])],
                    ttft=per_target[Target.TTFT],
                    tpot=per_target[Target.TPOT],
                    serving_quantile=self.config.serving_quantile,
                )
            )
        return out


# ---------------------------------------------------------------------- fitting


def segment_rows(samples: RequestSamples, layout: Layout) -> dict[SegmentKey, IntArray]:
    """Row indices of every segment present in ``samples``."""
    if layout is Layout.POOLED:
        return {POOLED_KEY: np.arange(len(samples), dtype=np.intp)}
    acc = np.asarray(samples.features.accelerator, dtype=object)
    codes = samples.features.pod_type
    out: dict[SegmentKey, IntArray] = {}
    for name in samples.accelerators:
        for code in np.unique(codes).tolist():
            rows = np.flatnonzero((acc == name) & (codes == code))
            if rows.size:
                out[SegmentKey(name, POD_TYPE_BY_CODE[int(code)].role)] = rows
    return out


def fit_segment_target(
    samples: RequestSamples,
    rows: IntArray,
    key: SegmentKey,
    target: Target,
    config: ModelConfig,
    accelerators: tuple[str, ...],
) -> TargetFit:
    """One target's boosters on one segment's rows, or why it is not ready."""
    actual = samples.actual(target)[rows]
    known = rows[np.isfinite(actual)]
    if known.size < config.min_samples:
        return NotReady(
            NotReadyReason.TOO_FEW_SAMPLES,
            f"{key.label}: {known.size} {target.value} samples, needs {config.min_samples}",
        )
    layout = FeatureLayout.for_target(
        target, pooled=config.layout is Layout.POOLED, accelerators=accelerators
    )
    matrix = layout.matrix(samples.features.take(known))
    boosters = fit_target(
        matrix, samples.actual(target)[known], layout, config.quantiles, config.boosting
    )
    if config.check_monotone:
        objective, report = boosters.check_monotone()
        if not report.ok:
            return NotReady(
                NotReadyReason.NOT_MONOTONE,
                f"{key.label} {target.value} {objective}: {report.describe()}",
            )
    return boosters


def fit_latency_model(samples: RequestSamples, config: ModelConfig) -> LatencyModel:
    """Fit every segment's TTFT and TPOT models (uncalibrated; see :mod:`predictor.training`)."""
    accelerators = samples.accelerators
    segments: dict[SegmentKey, dict[Target, TargetFit]] = {}
    for key, rows in segment_rows(samples, config.layout).items():
        segments[key] = {
            t: fit_segment_target(samples, rows, key, t, config, accelerators) for t in Target
        }
    return LatencyModel(config=config, accelerators=accelerators, segments=segments)


__all__ = [
    "POOLED_KEY",
    "LatencyModel",
    "Layout",
    "ModelConfig",
    "Objective",
    "SegmentKey",
    "ServingBatch",
    "fit_latency_model",
]
