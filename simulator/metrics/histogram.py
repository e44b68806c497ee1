"""Prometheus histograms cheap enough for the simulated engine's hot path.

The engine observes a TTFT per request, an inter-token latency per decode step *per running
sequence* and an iteration size per engine step — millions of observations per simulated hour. A
prometheus_client ``Histogram`` takes a lock and walks every bucket per observation; this one does
one ``bisect`` and two additions, and keeps per-bucket (not cumulative) counts in a plain list.
Cumulative counts, as Prometheus scrapes them, are built only at export time.

Step coalescing makes the hot path cheaper still: when the engine advances a decode-only stretch of
``k`` steps analytically, the step durations form an arithmetic sequence and every running sequence
sees each of them once. :meth:`Histogram.observe_arithmetic` records the whole stretch in time
proportional to the number of buckets the stretch spans, not to ``k``.

Bucket semantics are Prometheus's: a bucket with upper bound ``le`` counts values ``<= le``, so a
value equal to an edge lands in that edge's bucket. :class:`HistogramSnapshot` carries the frozen
counts and answers the questions PromQL would (``histogram_quantile`` interpolation, increase over
a window) so the simulator's in-memory metrics source agrees with a real Prometheus.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np


def _check_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    edges = tuple(float(b) for b in bounds)
    if not edges:
        raise ValueError("a histogram needs at least one finite bucket bound")
    if any(not math.isfinite(b) for b in edges):
        raise ValueError("bucket bounds must be finite; +Inf is implicit")
    if any(a >= b for a, b in pairwise(edges)):
        raise ValueError(f"bucket bounds must be strictly increasing: {edges}")
    return edges


def _count_le(first: float, step: float, k: int, edge: float) -> int:
    """How many of ``first + j*step`` (j = 0 … k−1, evaluated in floating point) are ``<= edge``.

    Floating-point ``first + j*step`` is monotone in ``j``, so the values ``<= edge`` form a prefix
    (``step > 0``) or a suffix (``step < 0``) of the sequence. The division gives the boundary
    index up to rounding; the correction loops (each runs at most once or twice) make it exact
    with respect to the floating-point values a naive loop would observe.
    """
    if step > 0:
        q = (edge - first) / step
        n = 0 if q < 0 else (k if q >= k else int(q) + 1)
        while n > 0 and first + (n - 1) * step > edge:
            n -= 1
        while n < k and first + n * step <= edge:
            n += 1
        return n
    # step < 0: the values <= edge are j >= m for the smallest such m.
    q = (first - edge) / -step
    m = 0 if q <= 0 else (k if q >= k else math.ceil(q))
    while m > 0 and first + (m - 1) * step <= edge:
        m -= 1
    while m < k and first + m * step > edge:
        m += 1
    return k - m


class Histogram:
    """A Prometheus histogram with fixed bucket bounds and per-bucket counts.

    ``counts[i]`` counts observations in ``(bounds[i-1], bounds[i]]``; the last slot,
    ``counts[len(bounds)]``, is the ``+Inf`` overflow. ``sum`` is the running sum of observed
    values. :meth:`buckets` returns the cumulative view Prometheus scrapes.

    Not thread-safe by itself: one engine writes it; readers on other threads take
    :meth:`snapshot` (a copy) and may see an observation half applied to ``sum`` vs ``counts``,
    never a count that disagrees with the buckets.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds: tuple[float, ...] = _check_bounds(bounds)
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum: float = 0.0

    @property
    def count(self) -> int:
        """Total number of observations (equals the ``+Inf`` bucket)."""
        return sum(self.counts)

    def observe(self, value: float, count: int = 1) -> None:
        """Record ``value`` ``count`` times (``value <= edge`` counts in that edge's bucket)."""
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count

    def observe_many(self, values: Iterable[float] | np.ndarray) -> None:
        """Record every value of ``values`` once (vectorised for numpy arrays)."""
        if isinstance(values, np.ndarray):
            if values.size == 0:
                return
            idx = np.searchsorted(np.asarray(self.bounds), values, side="left")
            per_bucket = np.bincount(idx, minlength=len(self.counts))
            counts = self.counts
            for i in np.flatnonzero(per_bucket).tolist():
                counts[i] += int(per_bucket[i])
            self.sum += float(values.sum())
            return
        for value in values:
            self.observe(value)

    def observe_arithmetic(self, first: float, step: float, k: int, weight: int = 1) -> None:
        """Observe ``first, first+step, …, first+(k−1)·step``, each ``weight`` times, in O(buckets).

        Used for coalesced decode stretches: ``k`` engine steps whose duration grows linearly
        (``step`` per step, as the KV context grows), observed once per running sequence
        (``weight`` = the batch size). The result is identical to the naive loop
        ``for j in range(k): observe(first + j * step, weight)`` — bucket by bucket, including
        values that land exactly on an edge — except that ``sum`` is computed in closed form and
        may differ from the loop's in the last few bits.

        How the buckets are filled: the number of values ``<= e`` for a bucket edge ``e`` is
        ``n(e) = clamp(floor((e − first) / step) + 1, 0, k)`` (for ``step > 0``), and the bucket
        ``(e_prev, e]`` receives ``(n(e) − n(e_prev)) · weight``. Only the edges between the
        smallest and the largest value are evaluated; buckets outside that range receive nothing.

        Worked example with the ITL buckets ``… 0.01, 0.025, 0.05, 0.075 …``: a stretch of
        ``k = 20`` steps starting at 20 ms and growing by 2 ms per step, with 8 running sequences
        (``first=0.020, step=0.002, k=20, weight=8``) spans the values 0.020 … 0.058, so only the
        edges 0.025 and 0.05 are evaluated:

        * ``n(0.025) = floor(0.005 / 0.002) + 1 = floor(2.5) + 1 = 3`` (0.020, 0.022, 0.024);
        * ``n(0.05)  = floor(0.030 / 0.002) + 1 = 15 + 1 = 16`` — the 16th value is exactly 0.05
          and, Prometheus buckets being ``le``, counts in the ``le="0.05"`` bucket;
        * everything else (20 − 16 = 4 values) falls in ``le="0.075"``.

        Per-bucket increments: ``le=0.025`` += 3·8 = 24, ``le=0.05`` += 13·8 = 104,
        ``le=0.075`` += 4·8 = 32; ``count`` += 160; ``sum`` += 8 · (20·0.020 + 0.002·(20·19/2))
        = 8 · 0.78 = 6.24.

        Floating point: the division above is only an estimate of the boundary index; it is
        corrected against the values ``first + j*step`` as the naive loop would compute them, so a
        value that rounds to just above an edge (``0.1 + 2*0.1 = 0.30000000000000004 > 0.3``) is
        counted where the loop would count it.
        """
        if k <= 0 or weight == 0:
            return
        counts = self.counts
        bounds = self.bounds
        if k == 1 or step == 0:
            counts[bisect_left(bounds, first)] += k * weight
            self.sum += first * (k * weight)
            return
        last = first + (k - 1) * step
        low, high = (first, last) if step > 0 else (last, first)
        i_low = bisect_left(bounds, low)
        i_high = bisect_left(bounds, high)
        if i_low == i_high:
            counts[i_low] += k * weight
        else:
            below = 0  # values <= bounds[i_low - 1]: none, by the choice of i_low
            for i in range(i_low, i_high):
                n = _count_le(first, step, k, bounds[i])
                counts[i] += (n - below) * weight
                below = n
            counts[i_high] += (k - below) * weight
        self.sum += weight * (k * first + step * (k * (k - 1) // 2))

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative ``(upper bound, count)`` pairs as scraped, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        acc = 0
        for bound, c in zip((*self.bounds, math.inf), self.counts, strict=True):
            acc += c
            out.append((bound, acc))
        return out

    def snapshot(self) -> HistogramSnapshot:
        """An immutable copy of the current counts and sum."""
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.sum)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A histogram frozen at one instant: per-bucket counts (``+Inf`` last) and the sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        """Total observations (the ``+Inf`` bucket, ``_count``)."""
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Cumulative counts per bound, ``+Inf`` last (the ``_bucket`` values)."""
        out: list[int] = []
        acc = 0
        for c in self.counts:
            acc += c
            out.append(acc)
        return out

    def since(self, older: HistogramSnapshot) -> HistogramSnapshot:
        """The observations made between ``older`` and this snapshot (PromQL ``increase``).

        If any bucket went down the source was reset (a restarted pod), and, as Prometheus does
        for counters, the whole of this snapshot counts as the increase.
        """
        if older.bounds != self.bounds:
            raise ValueError("cannot diff histograms with different bucket bounds")
        diff = tuple(a - b for a, b in zip(self.counts, older.counts, strict=True))
        if any(d < 0 for d in diff):
            return self
        return HistogramSnapshot(self.bounds, diff, self.sum - older.sum)

    def mean(self) -> float:
        """``_sum / _count``; NaN when there are no observations."""
        n = self.count
        return self.sum / n if n else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile as PromQL's ``histogram_quantile`` computes it; NaN without data.

        Linear interpolation inside the bucket holding the rank ``q · count``; the first bucket
        starts at 0; a rank in the ``+Inf`` bucket returns the largest finite bound (Prometheus's
        ``bucketQuantile``).
        """
        if math.isnan(q):
            return math.nan
        if q < 0:
            return -math.inf
        if q > 1:
            return math.inf
        cumulative = self.cumulative()
        total = cumulative[-1]
        if total == 0:
            return math.nan
        rank = q * total
        b = bisect_left(cumulative, rank, hi=len(cumulative) - 1)
        if b == len(cumulative) - 1:
            return self.bounds[-1]
        if b == 0 and self.bounds[0] <= 0:
            return self.bounds[0]
        start = 0.0
        end = self.bounds[b]
        in_bucket = float(cumulative[b])
        if b > 0:
            start = self.bounds[b - 1]
            in_bucket -= cumulative[b - 1]
            rank -= cumulative[b - 1]
        if in_bucket == 0:  # q == 0 with an empty first bucket: Go's 0/0
            return math.nan
        return start + (end - start) * (rank / in_bucket)
