"""The post-fit monotonicity check: a model that says "more load, less latency" is rejected.

Why this module exists: capacity planning bisects on load, which is exact only if predicted latency
never decreases as load grows. LightGBM's ``monotone_constraints`` promise that per column, but a
model can reach us without them (an unconstrained fit, an artifact written by another version, a
hand-edited file). So every model is probed after fitting and after loading, and one that breaks
the promise reads as ``NotReady``.

The probe: take ``b`` base rows (spread over the training data), and for each constrained column
``j`` sweep it over a grid of ``g`` values spanning its training range while the other columns
stay fixed. Along every sweep the prediction must move in the constrained direction:
``direction·(f(x_{k+1}) − f(x_k)) ≥ −tolerance``. With ``b = 48`` and ``g = 12`` that is
48·12 = 576 predictions per column, one batched ``predict`` call each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from predictor.features import FeatureLayout, FloatArray


@dataclass(frozen=True, slots=True)
class MonotonicityViolation:
    """One sweep where the prediction moved against its constraint."""

    feature: str
    direction: int
    base_row: int
    from_value: float
    to_value: float
    change: float


@dataclass(frozen=True, slots=True)
class MonotonicityReport:
    """What was probed and what broke (empty ``violations`` means the model passes)."""

    features: tuple[str, ...]
    sweeps: int
    violations: tuple[MonotonicityViolation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        """One line for logs and ``NotReady`` messages."""
        if self.ok:
            return f"monotone in {', '.join(self.features)} over {self.sweeps} sweeps"
        worst = min(self.violations, key=lambda v: v.direction * v.change)
        return (
            f"{len(self.violations)} of {self.sweeps} sweeps break monotonicity; worst: "
            f"{worst.feature} {worst.from_value:g}→{worst.to_value:g} changes the prediction by "
            f"{worst.change:+.4g} (direction {worst.direction:+d})"
        )


@dataclass(frozen=True)
class ProbeGrid:
    """Where to probe: ``base`` rows and, per column, the sweep values (``None``: unconstrained).

    Built from the training matrix and stored with the model, so a model loaded from disk is
    probed over the same region it was trained on.
    """

    base: FloatArray
    sweeps: tuple[FloatArray | None, ...]

    @classmethod
    def from_training(
        cls, layout: FeatureLayout, training: FloatArray, *, rows: int = 48, grid_points: int = 12
    ) -> ProbeGrid:
        """``rows`` rows spread evenly over ``training``; per constrained column, ``grid_points``
        quantiles of its training values (deterministic, no random draw)."""
        if len(training) <= rows:
            base = training.copy()
        else:
            base = training[np.linspace(0, len(training) - 1, rows).round().astype(np.intp)]
        sweeps: list[FloatArray | None] = []
        for j, direction in enumerate(layout.monotone_constraints):
            column = training[:, j]
            column = column[np.isfinite(column)]
            if direction == 0 or column.size == 0:
                sweeps.append(None)
                continue
            grid = np.unique(np.quantile(column, np.linspace(0.0, 1.0, grid_points)))
            sweeps.append(grid if grid.size >= 2 else None)
        return cls(base=np.ascontiguousarray(base, dtype=np.float64), sweeps=tuple(sweeps))

    def to_json(self) -> dict[str, object]:
        return {
            "base": self.base.tolist(),
            "sweeps": [None if g is None else g.tolist() for g in self.sweeps],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProbeGrid:
        base = np.asarray(data["base"], dtype=np.float64)
        raw = data["sweeps"]
        if not isinstance(raw, list) or base.ndim != 2 or base.shape[1] != len(raw):
            raise ValueError("probe grid: base rows and sweeps disagree in width")
        sweeps = tuple(None if g is None else np.asarray(g, dtype=np.float64) for g in raw)
        return cls(base=base, sweeps=sweeps)


def check_monotone(
    predict: Callable[[FloatArray], FloatArray],
    layout: FeatureLayout,
    probe: ProbeGrid,
    *,
    tolerance: float = 1e-9,
) -> MonotonicityReport:
    """Probe ``predict`` along every constrained column of ``layout`` (see the module doc)."""
    base = probe.base
    features: list[str] = []
    violations: list[MonotonicityViolation] = []
    sweeps = 0
    for j, direction in enumerate(layout.monotone_constraints):
        grid = probe.sweeps[j]
        if direction == 0 or grid is None or len(base) == 0:
            continue
        features.append(layout.columns[j])
        points = np.repeat(base, grid.size, axis=0)
        points[:, j] = np.tile(grid, len(base))
        pred = predict(np.ascontiguousarray(points)).reshape(len(base), grid.size)
        steps = np.diff(pred, axis=1)
        bad_rows, bad_steps = np.nonzero(direction * steps < -tolerance)
        sweeps += len(base)
        for r, k in zip(bad_rows.tolist(), bad_steps.tolist(), strict=True):
            violations.append(
                MonotonicityViolation(
                    feature=layout.columns[j],
                    direction=direction,
                    base_row=r,
                    from_value=float(grid[k]),
                    to_value=float(grid[k + 1]),
                    change=float(steps[r, k]),
                )
            )
    return MonotonicityReport(features=tuple(features), sweeps=sweeps, violations=tuple(violations))
