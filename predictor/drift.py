"""Drift detection: is the serving model's error on new samples worse than it was held out?

Why this module exists: retraining on a cadence alone leaves a model that stopped describing the
pods (a new engine version, a changed prompt mix, a noisy neighbour) serving until the next
tick, and retraining on every batch wastes the CPU the gateway's pods need. Every sample posted
after a model was installed is one it never saw, so the service scores the model on them as they
arrive and compares with what the same model scored on its own held-out rows when it was
trained. Drift is declared, per (target, accelerator), only when

* at least ``min_samples`` new rows were scored since the model was installed, and
* the rolling **coverage** of the p90 differs from the held-out coverage by more than
  ``coverage_tolerance`` (either way: a p90 that now covers 0.99 is as wrong as one covering
  0.75), or the rolling **relative pinball** (pinball ÷ mean latency, scale-free so that heavier
  traffic alone is not drift) exceeds ``pinball_ratio`` times the held-out one.

Rolling sums decay with a half-life like :mod:`predictor.calibration`'s coverage tracker, so an
old regime is forgotten in a few half-lives. Example with the defaults (500 rows, ±0.05, ×1.5):
a model held out at coverage 0.90 and relative pinball 0.12 sees 600 new H100 TTFT rows with
coverage 0.62 → drift (0.28 off); with coverage 0.88 and relative pinball 0.15 (1.25×) → no
drift; 400 rows of anything → too few to say.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from predictor.features import FloatArray, Target
from predictor.metrics import ALL, HeldOutMetrics


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """When new samples say the serving model has drifted."""

    min_samples: int = 500
    """New rows (per target and accelerator) scored since the model was installed before drift
    can be declared: at 500, sampling noise moves a 0.9 coverage by ±0.013 (1σ)."""
    coverage_tolerance: float = 0.05
    """Largest accepted difference (either way) between rolling and held-out p90 coverage."""
    pinball_ratio: float = 1.5
    """Largest accepted rolling relative pinball, as a multiple of the held-out one."""
    half_life_s: float = 900.0
    """Seconds after which a scored row weighs half in the rolling sums."""
    min_reference_rows: int = 50
    """Held-out rows an accelerator needs for its metrics to be a reference (else no drift
    check for it)."""

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.min_reference_rows < 1:
            raise ValueError("min_samples and min_reference_rows must be ≥ 1")
        if not 0.0 < self.coverage_tolerance < 1.0 or self.pinball_ratio <= 1.0:
            raise ValueError("need 0 < coverage_tolerance < 1 and pinball_ratio > 1")
        if self.half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")


@dataclass(frozen=True, slots=True)
class Reference:
    """What the model scored on its held-out rows for one (target, accelerator)."""

    coverage: float
    relative_pinball: float
    n: int


@dataclass(frozen=True, slots=True)
class RollingError:
    """Recency-weighted sums over new rows of one (target, accelerator), and the raw count."""

    hits: float = 0.0
    total: float = 0.0
    pinball: float = 0.0
    actual: float = 0.0
    count: int = 0
    updated_at: float | None = None

    @property
    def coverage(self) -> float | None:
        return None if self.total <= 0 else self.hits / self.total

    @property
    def relative_pinball(self) -> float | None:
        return None if self.actual <= 0 else self.pinball / self.actual

    def add(
        self,
        actual: FloatArray,
        predicted: FloatArray,
        quantile: float,
        now: float,
        half_life_s: float,
    ) -> RollingError:
        """The sums decayed to ``now`` plus one batch (``actual``/``predicted`` in ms)."""
        decay = 1.0
        if self.updated_at is not None and now > self.updated_at:
            decay = 0.5 ** ((now - self.updated_at) / half_life_s)
        diff = actual - predicted
        loss = np.maximum(quantile * diff, (quantile - 1.0) * diff)
        return RollingError(
            hits=self.hits * decay + float(np.sum(actual <= predicted)),
            total=self.total * decay + actual.size,
            pinball=self.pinball * decay + float(loss.sum()),
            actual=self.actual * decay + float(actual.sum()),
            count=self.count + int(actual.size),
            updated_at=now,
        )


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """The comparison for one (target, accelerator), and whether it is drift."""

    target: Target
    accelerator: str
    count: int
    coverage: float | None
    reference_coverage: float
    relative_pinball: float | None
    reference_relative_pinball: float
    drifted: bool
    why: str

    def to_json(self) -> dict[str, object]:
        def rounded(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(v, 4)

        return {
            "target": self.target.value,
            "accelerator": self.accelerator,
            "samples": self.count,
            "coverage": rounded(self.coverage),
            "held_out_coverage": rounded(self.reference_coverage),
            "relative_pinball": rounded(self.relative_pinball),
            "held_out_relative_pinball": rounded(self.reference_relative_pinball),
            "drifted": self.drifted,
            "why": self.why,
        }


def references(
    metrics: Iterable[HeldOutMetrics], min_rows: int
) -> dict[tuple[Target, str], Reference]:
    """Per (target, accelerator) held-out references with at least ``min_rows`` rows."""
    out: dict[tuple[Target, str], Reference] = {}
    for m in metrics:
        if m.accelerator == ALL or m.n < min_rows or not math.isfinite(m.coverage_p90):
            continue
        out[(m.target, m.accelerator)] = Reference(m.coverage_p90, m.relative_pinball, m.n)
    return out


@dataclass(frozen=True)
class DriftMonitor:
    """Rolling error of one installed model against its held-out references (frozen; every
    update returns a new monitor)."""

    quantile: float
    reference: Mapping[tuple[Target, str], Reference]
    policy: DriftPolicy = field(default_factory=DriftPolicy)
    rolling: Mapping[tuple[Target, str], RollingError] = field(default_factory=dict)

    @classmethod
    def for_model(
        cls, quantile: float, metrics: Iterable[HeldOutMetrics], policy: DriftPolicy
    ) -> DriftMonitor:
        """A fresh monitor for a model with these held-out ``metrics``."""
        return cls(quantile, references(metrics, policy.min_reference_rows), policy)

    def observe(
        self,
        target: Target,
        accelerators: tuple[str, ...],
        actual_ms: FloatArray,
        predicted_ms: FloatArray,
        now: float,
    ) -> DriftMonitor:
        """The monitor after scoring a batch (rows with an unknown actual or no prediction are
        skipped)."""
        valid = np.isfinite(actual_ms) & np.isfinite(predicted_ms)
        acc = np.asarray(accelerators, dtype=object)
        rolling = dict(self.rolling)
        for name in sorted(set(accelerators)):
            mask = valid & (acc == name)
            if not mask.any():
                continue
            key = (target, name)
            rolling[key] = rolling.get(key, RollingError()).add(
                actual_ms[mask], predicted_ms[mask], self.quantile, now, self.policy.half_life_s
            )
        return replace(self, rolling=rolling)

    def findings(self) -> list[DriftFinding]:
        """One finding per (target, accelerator) that has both a reference and new rows."""
        out: list[DriftFinding] = []
        p = self.policy
        for key, state in sorted(self.rolling.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
            ref = self.reference.get(key)
            if ref is None:
                continue
            coverage, relative = state.coverage, state.relative_pinball
            why = ""
            if state.count < p.min_samples:
                why = f"{state.count} of {p.min_samples} samples"
            elif coverage is not None and abs(coverage - ref.coverage) > p.coverage_tolerance:
                why = f"coverage {coverage:.3f} vs {ref.coverage:.3f} held out"
            elif (
                relative is not None
                and math.isfinite(ref.relative_pinball)
                and relative > p.pinball_ratio * ref.relative_pinball
            ):
                why = (
                    f"relative pinball {relative:.3f} vs {ref.relative_pinball:.3f} held out "
                    f"(> {p.pinball_ratio:g}×)"
                )
            drifted = state.count >= p.min_samples and bool(why)
            out.append(
                DriftFinding(
                    target=key[0],
                    accelerator=key[1],
                    count=state.count,
                    coverage=coverage,
                    reference_coverage=ref.coverage,
                    relative_pinball=relative,
                    reference_relative_pinball=ref.relative_pinball,
                    drifted=drifted,
                    why=why or "within tolerance",
                )
            )
        return out

    def drifted(self) -> list[DriftFinding]:
        """The findings that are drift."""
        return [f for f in self.findings() if f.drifted]


__all__ = [
    "DriftFinding",
    "DriftMonitor",
    "DriftPolicy",
    "Reference",
    "RollingError",
    "references",
]
