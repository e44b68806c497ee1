"""From samples to a shippable model: split, fit, calibrate, evaluate; and when to retrain.

Why this module exists: the service, the CLI and the benchmarks must train the same way, or their
numbers would not describe the model that serves. One function does it:

1. split the samples by content hash into fit (70%), calibration (20%) and test (10%) sets
   (:class:`predictor.buffer.SplitPolicy`);
2. fit the models on the fit set (:func:`predictor.models.fit_latency_model`);
3. fit conformal offsets per accelerator and waiting-queue stratum on the calibration set
   (:mod:`predictor.calibration`), so the p90 covers 90% on data the trees never saw, at light
   load and in overload alike;
4. score the calibrated model on the test set (:mod:`predictor.metrics`).

Retraining happens on a cadence and on drift (:func:`retrain_decision`): at most every
``min_interval_s``; at least every ``interval_s`` once ``min_new_samples`` arrived; and early when
new samples score the serving model worse than its own held-out rows did
(:mod:`predictor.drift`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from predictor.boosting import Objective
from predictor.buffer import Split, SplitPolicy
from predictor.calibration import CalibrationEntry, ConformalCalibration, fit_conformal
from predictor.features import NUM_REQUEST_WAITING, Target
from predictor.metrics import ALL, HeldOutMetrics, evaluate_arrays
from predictor.models import LatencyModel, Layout, ModelConfig, fit_latency_model
from predictor.outcomes import NotReady, NotReadyReason
from predictor.samples import RequestSamples


@dataclass(frozen=True)
class TrainingConfig:
    """Model settings plus how samples are split and whether to calibrate."""

    model: ModelConfig = field(default_factory=ModelConfig)
    split: SplitPolicy = field(default_factory=SplitPolicy)
    calibrate: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """A trained model with the evidence the registry stores next to it."""

    model: LatencyModel
    metrics: tuple[HeldOutMetrics, ...]
    rows: dict[str, int]
    window: tuple[float | None, float | None]
    trained_at: float

    def headline(self, target: Target) -> HeldOutMetrics | None:
        """The all-accelerator metrics of ``target``."""
        for m in self.metrics:
            if m.target is target and m.accelerator == ALL:
                return m
        return None

    def pinball(self, target: Target) -> float:
        """The all-accelerator held-out p90 pinball loss of ``target`` (``inf`` if unknown)."""
        m = self.headline(target)
        return m.pinball_p90 if m is not None and math.isfinite(m.pinball_p90) else math.inf


def calibrate(model: LatencyModel, samples: RequestSamples) -> ConformalCalibration:
    """Conformal offsets of every (target, quantile, accelerator) from held-out ``samples``."""
    entries: dict[tuple[Target, float, str], CalibrationEntry] = {}
    for target in Target:
        log_pred, accs = model.predict_log_quantiles(samples.features, target, calibrated=False)
        log_actual = np.log(np.maximum(samples.actual(target), 1e-3))
        log_actual[~np.isfinite(samples.actual(target))] = np.nan
        waiting = samples.features.values[NUM_REQUEST_WAITING]
        for j, q in enumerate(model.config.quantiles):
            for e in fit_conformal(target, q, log_actual, log_pred[:, j], accs, waiting):
                entries[(e.target, e.quantile, e.accelerator)] = e
    return ConformalCalibration(entries=entries)


def evaluate_model(model: LatencyModel, samples: RequestSamples) -> list[HeldOutMetrics]:
    """Held-out metrics of ``model`` on ``samples`` (p90, or the serving quantile if no p90)."""
    qs = model.config.quantiles
    q = 0.9 if 0.9 in qs else model.config.serving_quantile
    out: list[HeldOutMetrics] = []
    for target in Target:
        log_q, accs = model.predict_log_quantiles(samples.features, target)
        p = np.exp(log_q[:, qs.index(q)])
        mean = model.predict_mean_ms(samples.features, target)
        out += evaluate_arrays(target, accs, samples.actual(target), p, mean, alpha=q)
    return out


def train(samples: RequestSamples, config: TrainingConfig, now: float) -> TrainingResult:
    """Split, fit, calibrate and evaluate (see the module doc). ``now`` stamps the result."""
    parts = config.split.split(samples)
    model = fit_latency_model(parts[Split.FIT], config.model)
    if config.calibrate and len(parts[Split.CALIBRATION]):
        model = model.with_calibration(calibrate(model, parts[Split.CALIBRATION]))
    metrics = evaluate_model(model, parts[Split.TEST]) if len(parts[Split.TEST]) else []
    stamps = samples.timestamp[np.isfinite(samples.timestamp)]
    window = (float(stamps.min()), float(stamps.max())) if stamps.size else (None, None)
    return TrainingResult(
        model=model,
        metrics=tuple(metrics),
        rows={s.value: len(p) for s, p in parts.items()},
        window=window,
        trained_at=now,
    )


def train_best_layout(
    samples: RequestSamples, config: TrainingConfig, now: float
) -> tuple[TrainingResult, dict[Layout, float]]:
    """Train per-segment and pooled models; keep the one with the lower held-out pinball loss.

    The score of a layout is the sum over targets of its p90 pinball loss divided by the larger
    of the two layouts' losses for that target (TTFT is in hundreds of ms, TPOT in tens, so raw
    losses would let TTFT decide alone). A layout whose model is not ready scores ``inf``; a tie
    keeps per-segment models.
    """
    results = {
        layout: train(
            samples,
            TrainingConfig(
                model=_with_layout(config.model, layout),
                split=config.split,
                calibrate=config.calibrate,
            ),
            now,
        )
        for layout in Layout
    }
    scores: dict[Layout, float] = {}
    for layout, result in results.items():
        if not result.model.is_ready:
            scores[layout] = math.inf
            continue
        total = 0.0
        for target in Target:
            worst = max(r.pinball(target) for r in results.values() if r.model.is_ready)
            own = result.pinball(target)
            total += own / worst if math.isfinite(worst) and worst > 0 else 0.0
        scores[layout] = total
    best = min(scores, key=lambda k: (scores[k], k is not Layout.PER_SEGMENT))
    return results[best], scores


def _with_layout(config: ModelConfig, layout: Layout) -> ModelConfig:
    return ModelConfig(
        quantiles=config.quantiles,
        serving_quantile=config.serving_quantile,
        layout=layout,
        boosting=config.boosting,
        min_samples=config.min_samples,
        check_monotone=config.check_monotone,
    )


def not_ready_summary(model: LatencyModel) -> list[NotReady]:
    """Every segment target that cannot predict, for logs and ``/status``."""
    out: list[NotReady] = []
    for fits in model.segments.values():
        out += [f for f in fits.values() if isinstance(f, NotReady)]
    if not model.segments:
        out.append(NotReady(NotReadyReason.NO_MODEL, "no segments were trained"))
    return out


# ---------------------------------------------------------------------- cadence


class RetrainReason(StrEnum):
    """Why a retraining ran. Append-only: values are metric labels."""

    FIRST = "first"
    """No model serves yet and enough samples arrived."""
    CADENCE = "cadence"
    """``interval_s`` passed since the last training and ``min_new_samples`` arrived."""
    DRIFT = "drift"
    """New samples score the serving model worse than its held-out rows did
    (:mod:`predictor.drift`)."""
    MANUAL = "manual"
    """An operator asked (``POST /retrain``)."""


@dataclass(frozen=True, slots=True)
class RetrainPolicy:
    """When to retrain (seconds and sample counts)."""

    interval_s: float = 300.0
    """Seconds between cadence retrainings (counted from the last training or model load)."""
    min_interval_s: float = 30.0
    """Fewest seconds between two retrainings, whatever their reason."""
    min_new_samples: int = 1_000
    """Samples that must arrive before a first or a cadence retraining."""


@dataclass(frozen=True, slots=True)
class RetrainState:
    """What the last training saw."""

    last_trained_at: float | None = None
    samples_added_at_last: int = 0


def retrain_decision(
    policy: RetrainPolicy,
    state: RetrainState,
    now: float,
    samples_added: int,
    *,
    has_model: bool,
    drifted: bool,
) -> RetrainReason | None:
    """Whether to retrain now, and why (``None``: not now).

    ``samples_added`` counts every sample ever added; ``has_model`` says whether a model
    serves; ``drifted`` whether the drift monitor found drift. The ladder, first match wins:
    no model and ``min_new_samples`` new → ``first``; trained less than ``min_interval_s`` ago
    or nothing new → wait; drift → ``drift``; ``interval_s`` passed (or never trained here) and
    ``min_new_samples`` new → ``cadence``. Example with the defaults: trained at t = 0 with
    5,000 samples; at t = 120 s with 5,600 → wait (unless drifted: ``drift``); at t = 320 s
    with 6,200 → ``cadence``.
    """
    new = samples_added - state.samples_added_at_last
    if not has_model:
        return RetrainReason.FIRST if new >= policy.min_new_samples else None
    last = state.last_trained_at
    if (last is not None and now - last < policy.min_interval_s) or new <= 0:
        return None
    if drifted:
        return RetrainReason.DRIFT
    if (last is None or now - last >= policy.interval_s) and new >= policy.min_new_samples:
        return RetrainReason.CADENCE
    return None


__all__ = [
    "Objective",
    "RetrainPolicy",
    "RetrainReason",
    "RetrainState",
    "TrainingConfig",
    "TrainingResult",
    "calibrate",
    "evaluate_model",
    "retrain_decision",
    "train",
    "train_best_layout",
]
