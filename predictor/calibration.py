"""Conformal calibration of quantile models, per accelerator, and online coverage tracking.

Why this module exists: a quantile model fitted on one sample is over- or under-confident on the
next (llm-d's p90 covers 88%/91% with one server per pool but 62–65% when one server serves
several pools). Split conformal prediction turns any quantile model into one with a guaranteed
marginal coverage on exchangeable data, and doing it per accelerator fixes exactly the
heterogeneous-pool case. Coverage is then watched online, so drift shows up as a number.

**Split conformal (one-sided, in log space).** On a calibration set the model never trained on,
score each row ``s_i = log(y_i) − log(q̂(x_i))`` (how far the observation lies above the
predicted quantile). For level ``α`` with ``n`` scores, the offset is the ``k``-th smallest score
with ``k = ⌈(n + 1)·α⌉``; the calibrated quantile is ``q̂(x)·exp(offset)``. Then
``P(y ≤ q̂(x)·e^offset) ≥ α`` for a new exchangeable row, and at most ``α + 1/(n + 1)``.

Worked example: nine scores ``[−0.3, −0.2, −0.1, 0, 0.05, 0.1, 0.2, 0.3, 0.4]``, ``α = 0.9``:
``k = ⌈10·0.9⌉ = 9``, offset = 0.4, so every p90 prediction is multiplied by ``e^0.4 ≈ 1.49``. With
``n = 1,000`` the coverage lies between 0.900 and 0.901. A multiplicative offset keeps a monotone
model monotone.

**Adaptive conformal (online, Gibbs & Candès 2021).** Between retrains the offset can follow
drift: after each batch with ``m`` misses out of ``b`` rows,
``offset ← offset + γ·(m − (1 − α)·b)/b``. With ``γ = 0.05``, a batch of 100 with 20 misses at
``α = 0.9`` raises the offset by ``0.05·(20 − 10)/100 = 0.005``.

**Coverage tracking.** Hits and totals decay with a half-life: after ``Δt`` seconds both are
multiplied by ``0.5^(Δt/half_life)`` before the new batch is added, so coverage is a recency-
weighted fraction that forgets an old regime in a few half-lives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from predictor.features import FloatArray, Target

#: Offsets fitted on fewer rows than this fall back to the all-accelerator offset.
MIN_CALIBRATION_ROWS = 50
ALL_ACCELERATORS = "*"


def conformal_quantile(scores: FloatArray, level: float) -> float:
    """The ``⌈(n + 1)·level⌉``-th smallest score (``inf`` when ``n`` is too small for ``level``)."""
    finite = np.sort(scores[np.isfinite(scores)])
    n = finite.size
    k = math.ceil((n + 1) * level)
    if n == 0 or k > n:
        return math.inf
    return float(finite[max(k, 1) - 1])


@dataclass(frozen=True, slots=True)
class CalibrationEntry:
    """The log-space offset of one (target, quantile, accelerator), from ``n`` held-out rows."""

    target: Target
    quantile: float
    accelerator: str
    offset: float
    n: int


@dataclass(frozen=True)
class ConformalCalibration:
    """Offsets by (target, quantile, accelerator); ``*`` is the all-accelerator fallback."""

    entries: Mapping[tuple[Target, float, str], CalibrationEntry]

    @classmethod
    def identity(cls) -> ConformalCalibration:
        """No adjustment anywhere."""
        return cls(entries={})

    def offset(self, target: Target, quantile: float, accelerator: str) -> float:
        """The log offset to add; the accelerator's own, else the pooled one, else 0."""
        entry = self.entries.get((target, quantile, accelerator))
        if entry is None:
            entry = self.entries.get((target, quantile, ALL_ACCELERATORS))
        return 0.0 if entry is None else entry.offset

    def offsets(self, target: Target, quantile: float, accelerators: Iterable[str]) -> FloatArray:
        """:meth:`offset` for every row's accelerator."""
        accelerators = tuple(accelerators)
        by_name = {a: self.offset(target, quantile, a) for a in set(accelerators)}
        return np.fromiter((by_name[a] for a in accelerators), np.float64, len(accelerators))

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "target": e.target.value,
                "quantile": e.quantile,
                "accelerator": e.accelerator,
                "offset": e.offset,
                "n": e.n,
            }
            for e in self.entries.values()
        ]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> ConformalCalibration:
        entries = {}
        for item in data:
            e = CalibrationEntry(
                target=Target(item["target"]),
                quantile=float(item["quantile"]),
                accelerator=str(item["accelerator"]),
                offset=float(item["offset"]),
                n=int(item["n"]),
            )
            entries[(e.target, e.quantile, e.accelerator)] = e
        return cls(entries=entries)


def fit_conformal(
    target: Target,
    quantile: float,
    log_actual: FloatArray,
    log_predicted: FloatArray,
    accelerators: tuple[str, ...],
    *,
    min_rows: int = MIN_CALIBRATION_ROWS,
) -> list[CalibrationEntry]:
    """Offsets for one (target, quantile): pooled over all rows, and per accelerator with enough.

    Rows whose actual value is unknown (NaN) are ignored. An accelerator with fewer than
    ``min_rows`` scores gets no entry of its own and uses the pooled one.
    """
    scores = log_actual - log_predicted
    known = np.isfinite(scores)
    acc = np.asarray(accelerators, dtype=object)
    out: list[CalibrationEntry] = []
    pooled = conformal_quantile(scores[known], quantile)
    if math.isfinite(pooled):
        out.append(CalibrationEntry(target, quantile, ALL_ACCELERATORS, pooled, int(known.sum())))
    for name in sorted(set(accelerators)):
        mask = known & (acc == name)
        n = int(mask.sum())
        if n < min_rows:
            continue
        offset = conformal_quantile(scores[mask], quantile)
        if math.isfinite(offset):
            out.append(CalibrationEntry(target, quantile, name, offset, n))
    return out


@dataclass(frozen=True, slots=True)
class AdaptiveOffset:
    """An online conformal offset (adaptive conformal inference) for one quantile level."""

    level: float
    offset: float
    step: float = 0.05

    def update(self, misses: int, total: int) -> AdaptiveOffset:
        """The offset after a batch with ``misses`` of ``total`` observations above the quantile."""
        if total <= 0:
            return self
        error = (misses - (1.0 - self.level) * total) / total
        return replace(self, offset=self.offset + self.step * error)


@dataclass(frozen=True, slots=True)
class CoverageState:
    """Recency-weighted hits and totals of one (target, accelerator) quantile."""

    hits: float = 0.0
    total: float = 0.0
    updated_at: float | None = None

    @property
    def coverage(self) -> float | None:
        """Fraction of observations at or below the predicted quantile; ``None`` before any."""
        return None if self.total <= 0 else self.hits / self.total


def update_coverage(
    state: CoverageState, hits: int, total: int, now: float, half_life_s: float = 900.0
) -> CoverageState:
    """Decay ``state`` to ``now`` and add a batch of ``hits`` out of ``total``."""
    decay = 1.0
    if state.updated_at is not None and now > state.updated_at:
        decay = 0.5 ** ((now - state.updated_at) / half_life_s)
    return CoverageState(
        hits=state.hits * decay + hits, total=state.total * decay + total, updated_at=now
    )


@dataclass(frozen=True)
class CoverageTracker:
    """Online coverage of the serving quantile per (target, accelerator); frozen, pure updates."""

    quantile: float
    half_life_s: float = 900.0
    states: Mapping[tuple[Target, str], CoverageState] = field(default_factory=dict)

    def observe(
        self,
        target: Target,
        accelerators: tuple[str, ...],
        actual_ms: FloatArray,
        predicted_ms: FloatArray,
        now: float,
    ) -> CoverageTracker:
        """The tracker after comparing a batch of actuals with their predicted quantiles."""
        valid = np.isfinite(actual_ms) & np.isfinite(predicted_ms)
        acc = np.asarray(accelerators, dtype=object)
        states = dict(self.states)
        for name in sorted(set(accelerators)):
            mask = valid & (acc == name)
            total = int(mask.sum())
            if total == 0:
                continue
            hits = int((actual_ms[mask] <= predicted_ms[mask]).sum())
            key = (target, name)
            states[key] = update_coverage(
                states.get(key, CoverageState()), hits, total, now, self.half_life_s
            )
        return replace(self, states=states)

    def coverage(self, target: Target, accelerator: str) -> float | None:
        state = self.states.get((target, accelerator))
        return None if state is None else state.coverage
