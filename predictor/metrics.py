"""Held-out accuracy: p90 coverage, pinball loss, MAPE and R², per target and accelerator.

Why this module exists: these numbers decide whether a model ships (the registry stores them,
``/v1/models`` serves them, ``sloscaler predictor eval`` prints them, the benchmarks compare
baselines with them), so they are computed in one place, the same way everywhere.

* coverage = fraction of rows with ``actual ≤ predicted quantile`` (a calibrated p90 is ≈ 0.90);
* pinball loss at ``α`` = mean of ``α·(y − q)`` when ``y ≥ q`` else ``(1 − α)·(q − y)``, in ms.
  Example at α = 0.9: ``y = 120, q = 100`` costs ``0.9·20 = 18``; ``y = 80, q = 100`` costs
  ``0.1·20 = 2`` — under-prediction is nine times dearer, which is what makes p90 the minimiser;
* MAPE of the mean model = mean of ``|ŷ − y| / y`` over rows with ``y > 0``;
* R² of the mean model = ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²``;
* relative pinball = pinball loss ÷ the mean actual latency of the same rows (an 18 ms loss on
  rows averaging 120 ms is 0.15): the scale-free error that drift detection compares.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from predictor.features import FloatArray, Target

ALL = "*"


def pinball_loss(actual: FloatArray, predicted: FloatArray, alpha: float) -> float:
    diff = actual - predicted
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1.0) * diff))) if diff.size else math.nan


def coverage(actual: FloatArray, predicted: FloatArray) -> float:
    return float(np.mean(actual <= predicted)) if actual.size else math.nan


def mape(actual: FloatArray, predicted: FloatArray) -> float:
    positive = actual > 0
    if not positive.any():
        return math.nan
    return float(np.mean(np.abs(predicted[positive] - actual[positive]) / actual[positive]))


def r2(actual: FloatArray, predicted: FloatArray) -> float:
    if actual.size < 2:
        return math.nan
    total = float(np.sum((actual - actual.mean()) ** 2))
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum((actual - predicted) ** 2)) / total


@dataclass(frozen=True, slots=True)
class HeldOutMetrics:
    """Accuracy of one target on one accelerator (``*`` = all rows)."""

    target: Target
    accelerator: str
    n: int
    coverage_p90: float
    pinball_p90: float
    mape_mean: float
    r2_mean: float
    not_ready: int = 0
    mean_actual_ms: float = math.nan

    @property
    def relative_pinball(self) -> float:
        """``pinball_p90 / mean_actual_ms``: the error in units of the latency itself, so that
        heavier traffic alone (larger latencies, proportionally larger errors) does not read as
        a worse model. NaN when either is unknown."""
        if not self.mean_actual_ms > 0:
            return math.nan
        return self.pinball_p90 / self.mean_actual_ms

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.value
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeldOutMetrics:
        def num(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(
            target=Target(data["target"]),
            accelerator=str(data["accelerator"]),
            n=int(data["n"]),
            coverage_p90=num("coverage_p90"),
            pinball_p90=num("pinball_p90"),
            mape_mean=num("mape_mean"),
            r2_mean=num("r2_mean"),
            not_ready=int(data.get("not_ready", 0)),
            mean_actual_ms=num("mean_actual_ms"),
        )


def evaluate_arrays(
    target: Target,
    accelerators: tuple[str, ...],
    actual: FloatArray,
    p90: FloatArray,
    mean: FloatArray,
    *,
    alpha: float = 0.9,
) -> list[HeldOutMetrics]:
    """Metrics per accelerator and over all rows (``*``).

    Rows with an unknown actual are skipped; rows with a known actual but no prediction (NaN)
    are counted in ``not_ready`` and left out of the other numbers.
    """
    acc = np.asarray(accelerators, dtype=object)
    known = np.isfinite(actual)
    predicted = np.isfinite(p90) & np.isfinite(mean)
    out: list[HeldOutMetrics] = []
    for name in (ALL, *sorted(set(accelerators))):
        group = known if name == ALL else known & (acc == name)
        use = group & predicted
        y, q, m = actual[use], p90[use], mean[use]
        out.append(
            HeldOutMetrics(
                target=target,
                accelerator=name,
                n=int(use.sum()),
                coverage_p90=coverage(y, q),
                pinball_p90=pinball_loss(y, q, alpha),
                mape_mean=mape(y, m),
                r2_mean=r2(y, m),
                not_ready=int((group & ~predicted).sum()),
                mean_actual_ms=float(y.mean()) if y.size else math.nan,
            )
        )
    return out
