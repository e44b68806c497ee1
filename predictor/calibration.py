"""Conformal calibration of quantile models, per accelerator and load stratum.

Why this module exists: a quantile model fitted on one sample is over- or under-confident on the
next (llm-d's p90 covers 88%/91% with one server per pool but 62–65% when one server serves
several pools), and by different amounts at light load and in overload. Split conformal
prediction turns any quantile model into one with a guaranteed coverage on exchangeable data;
doing it per accelerator fixes the heterogeneous-pool case, and per waiting-queue stratum
(Mondrian conformal prediction) keeps the guarantee inside each load regime instead of only on
average over a mostly light-load sample.

**Split conformal (one-sided, in log space).** On a calibration set the model never trained on,
score each row ``s_i = log(y_i) − log(q̂(x_i))`` (how far the observation lies above the
predicted quantile). For level ``α`` with ``n`` scores, the offset is the ``k``-th smallest score
with ``k = ⌈(n + 1)·α⌉``; the calibrated quantile is ``q̂(x)·exp(offset)``. Then
``P(y ≤ q̂(x)·e^offset) ≥ α`` for a new exchangeable row, and at most ``α + 1/(n + 1)``.

Worked example: nine scores ``[−0.3, −0.2, −0.1, 0, 0.05, 0.1, 0.2, 0.3, 0.4]``, ``α = 0.9``:
``k = ⌈10·0.9⌉ = 9``, offset = 0.4, so every p90 prediction is multiplied by ``e^0.4 ≈ 1.49``. With
``n = 1,000`` the coverage lies between 0.900 and 0.901.

**Strata (Mondrian).** Rows are grouped by the waiting queue of the pod, in the training
buffer's strata ``[0, 1, 2–3, 4–7, 8–15, 16–31, ≥ 32]``, and each group gets its own offset —
the guarantee above then holds within each group. Two rules keep it sound and the calibrated
model monotone in load:

1. a stratum with fewer than ``min_rows`` (50) calibration rows is pooled with the stratum
   below it (the lowest with the one above), so every stratum, even one never observed, has an
   offset from enough rows;
2. offsets must not decrease with the queue, or a prediction could drop when one more request
   waits: adjacent strata whose offsets decrease are pooled and share the offset of their
   pooled scores (pool-adjacent-violators), until none do.

Example: strata offsets 0.30 (4,000 rows), 0.34 (600), 0.22 (300), 0.41 (200), 0.05 (30 rows:
too few), and no rows at 16 or more waiting. Rule 1 pools the 30 rows and the empty strata with
the 200 (their 230 scores give, say, 0.38); rule 2 pools 0.34 and 0.22 (their 900 scores give,
say, 0.31 ≥ 0.30): offsets ``[0.30, 0.31, 0.31, 0.38, 0.38, 0.38, 0.38]``. A multiplicative,
non-decreasing offset keeps a monotone model monotone. An accelerator with fewer than
``min_rows`` calibration rows in all uses the all-accelerator offsets.

**Adaptive conformal (online, Gibbs & Candès 2021).** Between retrains a second, online offset
per (target, accelerator) follows what the split-conformal offsets cannot see: realised latencies
that the calibration rows did not resemble (a batch that fills up after a request was routed, a
drift). After every observation it moves by ``γ·(err − (1 − α))``, ``err = 1`` when the actual
exceeded the prediction served with the offset — the log-space form of ACI's
``α_{t+1} = α_t + γ·(α − err_t)`` (raising the offset is lowering the miscoverage level the served
quantile answers at). Over ``T`` observations the miss rate is then ``1 − α`` up to
``|offset_T − offset_0| / (γ·T)``, whatever the data. It is one number per (target, accelerator),
added to every waiting stratum alike, so the prediction stays monotone in load. With
``γ = 0.0004`` and ``α = 0.9``, a batch of 100 with 20 misses raises the offset by
``0.0004·(20 − 10) = 0.004`` (predictions × 1.004); 100 with 5 misses lowers it by 0.002.

Online coverage (how the serving model does on samples posted after it was installed) is tracked
by :mod:`predictor.drift`, which also decides when it has drifted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from predictor.features import WAITING_EDGES, FloatArray, Target

#: Offsets fitted on fewer rows than this fall back to the all-accelerator offset, and a
#: waiting stratum with fewer rows is pooled with its neighbour.
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


def waiting_strata(
    waiting: FloatArray, edges: tuple[float, ...] = WAITING_EDGES
) -> npt.NDArray[np.intp]:
    """The waiting-queue stratum of every row (``searchsorted(edges, w, 'right')``)."""
    return np.asarray(np.searchsorted(edges, waiting, "right"), dtype=np.intp)


def stratified_offsets(
    scores: FloatArray,
    strata: npt.NDArray[np.intp],
    n_strata: int,
    level: float,
    *,
    min_rows: int = MIN_CALIBRATION_ROWS,
) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
    """One non-decreasing offset per stratum, and the rows behind each (module doc, rules 1–2).

    ``None`` when all the scores together are too few for ``level``.
    """
    finite = np.isfinite(scores)
    by_stratum = [scores[finite & (strata == k)] for k in range(n_strata)]
    blocks: list[list[int]] = [[k] for k in range(n_strata)]

    def pooled(block: list[int]) -> FloatArray:
        return np.concatenate([by_stratum[k] for k in block])

    def offset(block: list[int]) -> float:
        rows = pooled(block)
        return conformal_quantile(rows, level) if rows.size >= min_rows else math.inf

    changed = True
    while changed and len(blocks) > 1:
        changed = False
        offsets = [offset(b) for b in blocks]
        for i, value in enumerate(offsets):
            if not math.isfinite(value):  # rule 1: too few rows, pool with the one below
                j = i - 1 if i > 0 else 1
                lo, hi = min(i, j), max(i, j)
                blocks[lo : hi + 1] = [blocks[lo] + blocks[hi]]
                changed = True
                break
        if changed:
            continue
        for i in range(len(blocks) - 1):
            if offsets[i] > offsets[i + 1]:  # rule 2: pool adjacent violators
                blocks[i : i + 2] = [blocks[i] + blocks[i + 1]]
                changed = True
                break
    values = [0.0] * n_strata
    rows = [0] * n_strata
    for block in blocks:
        value = conformal_quantile(pooled(block), level)
        if not math.isfinite(value):
            return None
        for k in block:
            values[k] = value
            rows[k] = int(by_stratum[k].size)
    return tuple(values), tuple(rows)


@dataclass(frozen=True, slots=True)
class CalibrationEntry:
    """Log-space offsets of one (target, quantile, accelerator): one per waiting stratum
    (non-decreasing), and the calibration rows each stratum had."""

    target: Target
    quantile: float
    accelerator: str
    offsets: tuple[float, ...]
    rows: tuple[int, ...]

    @property
    def n(self) -> int:
        """Calibration rows in all strata."""
        return sum(self.rows)


@dataclass(frozen=True)
class ConformalCalibration:
    """Offsets by (target, quantile, accelerator) and waiting stratum; ``*`` is the
    all-accelerator fallback."""

    entries: Mapping[tuple[Target, float, str], CalibrationEntry]
    waiting_edges: tuple[float, ...] = WAITING_EDGES

    @classmethod
    def identity(cls) -> ConformalCalibration:
        """No adjustment anywhere."""
        return cls(entries={})

    def _entry(self, target: Target, quantile: float, accelerator: str) -> CalibrationEntry | None:
        entry = self.entries.get((target, quantile, accelerator))
        if entry is None:
            entry = self.entries.get((target, quantile, ALL_ACCELERATORS))
        return entry

    def offset(self, target: Target, quantile: float, accelerator: str, waiting: float) -> float:
        """The log offset to add; the accelerator's own, else the pooled one, else 0."""
        return float(self.offsets(target, quantile, (accelerator,), np.array([waiting]))[0])

    def offsets(
        self,
        target: Target,
        quantile: float,
        accelerators: Iterable[str],
        waiting: FloatArray,
    ) -> FloatArray:
        """:meth:`offset` for every row (its accelerator and its waiting queue)."""
        accelerators = tuple(accelerators)
        strata = waiting_strata(waiting, self.waiting_edges)
        names = set(accelerators)
        out = np.zeros(len(accelerators))
        for name in names:
            entry = self._entry(target, quantile, name)
            if entry is None:
                continue
            table = np.asarray(entry.offsets, dtype=np.float64)
            if len(names) == 1:
                return table[strata]
            mask = np.fromiter((a == name for a in accelerators), np.bool_, len(accelerators))
            out[mask] = table[strata[mask]]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "waiting_edges": list(self.waiting_edges),
            "entries": [
                {
                    "target": e.target.value,
                    "quantile": e.quantile,
                    "accelerator": e.accelerator,
                    "offsets": list(e.offsets),
                    "rows": list(e.rows),
                }
                for e in self.entries.values()
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConformalCalibration:
        edges = tuple(float(v) for v in data["waiting_edges"])
        entries = {}
        for item in data["entries"]:
            e = CalibrationEntry(
                target=Target(item["target"]),
                quantile=float(item["quantile"]),
                accelerator=str(item["accelerator"]),
                offsets=tuple(float(v) for v in item["offsets"]),
                rows=tuple(int(v) for v in item["rows"]),
            )
            if len(e.offsets) != len(edges) + 1 or len(e.rows) != len(e.offsets):
                raise ValueError(f"calibration of {e.accelerator}: one offset per stratum")
            if any(b < a for a, b in zip(e.offsets, e.offsets[1:], strict=False)):
                raise ValueError(f"calibration of {e.accelerator}: offsets decrease with load")
            entries[(e.target, e.quantile, e.accelerator)] = e
        return cls(entries=entries, waiting_edges=edges)


def fit_conformal(
    target: Target,
    quantile: float,
    log_actual: FloatArray,
    log_predicted: FloatArray,
    accelerators: tuple[str, ...],
    waiting: FloatArray | None = None,
    *,
    min_rows: int = MIN_CALIBRATION_ROWS,
    edges: tuple[float, ...] = WAITING_EDGES,
) -> list[CalibrationEntry]:
    """Offsets for one (target, quantile): pooled over all rows, and per accelerator with enough.

    Rows whose actual value is unknown (NaN) are ignored. An accelerator with fewer than
    ``min_rows`` scores gets no entry of its own and uses the pooled one. Without ``waiting``
    every row is in the first stratum (one offset for all loads).
    """
    scores = log_actual - log_predicted
    known = np.isfinite(scores)
    strata = (
        np.zeros(len(scores), dtype=np.intp) if waiting is None else waiting_strata(waiting, edges)
    )
    acc = np.asarray(accelerators, dtype=object)
    out: list[CalibrationEntry] = []
    n_strata = len(edges) + 1
    for name in (ALL_ACCELERATORS, *sorted(set(accelerators))):
        mask = known if name == ALL_ACCELERATORS else known & (acc == name)
        if name != ALL_ACCELERATORS and int(mask.sum()) < min_rows:
            continue
        fitted = stratified_offsets(
            scores[mask], strata[mask], n_strata, quantile, min_rows=min_rows
        )
        if fitted is not None:
            out.append(CalibrationEntry(target, quantile, name, *fitted))
    return out


#: ACI step (log units per observation): the benchmark's choice (docs/benchmarks.md).
ADAPTIVE_STEP = 0.0004


@dataclass(frozen=True, slots=True)
class AdaptiveOffset:
    """An online conformal offset (adaptive conformal inference) for one quantile level: a log
    offset added to the split-conformal one, and the observations and misses behind it."""

    level: float
    offset: float = 0.0
    step: float = ADAPTIVE_STEP
    observations: int = 0
    misses: int = 0

    def update(self, misses: int, total: int) -> AdaptiveOffset:
        """The state after ``total`` observations, ``misses`` of them above the served quantile:
        ``total`` ACI steps of ``step·(err − (1 − level))`` (their order does not matter)."""
        if total <= 0:
            return self
        return replace(
            self,
            offset=self.offset + self.step * (misses - (1.0 - self.level) * total),
            observations=self.observations + total,
            misses=self.misses + misses,
        )

    @property
    def miss_rate(self) -> float | None:
        """Share of the observations above the served quantile (``None`` before the first)."""
        return self.misses / self.observations if self.observations else None
