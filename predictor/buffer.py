"""A bounded training buffer, stratified by load, with a deterministic hashed split.

Why this module exists: traffic is mostly light load, so a plain FIFO of the last N samples forgets
the rare saturated moments that decide capacity — exactly the region the models must get right.
Like llm-d's training server we keep samples in buckets (queue × KV × prefix, and here also per
accelerator and pod type) of bounded size; a busy bucket recycles its oldest rows while a rare
one keeps what it has for as long as it needs.

Buckets per segment: waiting queue ``[0, 1, 2–3, 4–7, 8–15, 16–31, ≥ 32]`` (7), KV use in tenths
(10), prefix score in quarters (4): 280 buckets of ``per_bucket`` rows each (default 2,000, so at
most 560,000 rows per segment). A sample with 5 waiting, KV 0.83 and prefix 0.6 lands in queue
bucket 3, KV bucket 8, prefix bucket 2.

**Hashed split.** Every row gets a 64-bit hash of its own content (feature bits, targets,
timestamp, labels, mixed with splitmix64). ``hash mod 100 < 10`` puts it in the held-out test set,
``< 30`` in the calibration set, else in the fitting set. The split is a pure function of the row,
so it survives restarts, never leaks a row between sets when the buffer is rebuilt, and is the
same in the service, the CLI and the benchmarks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from predictor.features import (
    KV_CACHE_PERCENTAGE,
    NUM_REQUEST_WAITING,
    NUMERIC_FEATURES,
    POD_TYPE_BY_CODE,
    PREFIX_CACHE_SCORE,
    WAITING_EDGES,
    FeatureColumns,
)
from predictor.samples import RequestSamples

U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: U64) -> U64:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _label_hash(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "little")


def row_hashes(samples: RequestSamples) -> U64:
    """A 64-bit content hash per row (identical rows hash identically; see the module doc)."""
    n = len(samples)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        columns = [samples.features.values[name] for name in NUMERIC_FEATURES]
        columns += [samples.actual_ttft_ms, samples.actual_tpot_ms, samples.timestamp]
        for col in columns:
            h = _splitmix64(h ^ np.ascontiguousarray(col, dtype=np.float64).view(np.uint64))
        h = _splitmix64(h ^ samples.features.pod_type.astype(np.uint64))
        by_label = {a: _label_hash(a) for a in set(samples.features.accelerator)}
        labels = np.fromiter(
            (by_label[a] for a in samples.features.accelerator), dtype=np.uint64, count=n
        )
        return _splitmix64(h ^ labels)


class Split(StrEnum):
    """Which set a row belongs to."""

    FIT = "fit"
    CALIBRATION = "calibration"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class SplitPolicy:
    """Percent of rows held out for testing and for conformal calibration."""

    test_percent: int = 10
    calibration_percent: int = 20

    def __post_init__(self) -> None:
        if self.test_percent < 0 or self.calibration_percent < 0:
            raise ValueError("split percentages must be ≥ 0")
        if self.test_percent + self.calibration_percent >= 100:
            raise ValueError("test and calibration percentages leave nothing to fit on")

    def assign(self, hashes: U64) -> npt.NDArray[np.int8]:
        """Per row 0 = fit, 1 = calibration, 2 = test."""
        bucket = (hashes % np.uint64(100)).astype(np.int64)
        out = np.zeros(len(hashes), dtype=np.int8)
        out[bucket < self.test_percent + self.calibration_percent] = 1
        out[bucket < self.test_percent] = 2
        return out

    def split(self, samples: RequestSamples) -> Mapping[Split, RequestSamples]:
        """``samples`` divided into fit, calibration and test sets."""
        codes = self.assign(row_hashes(samples))
        return {
            Split.FIT: samples.take(codes == 0),
            Split.CALIBRATION: samples.take(codes == 1),
            Split.TEST: samples.take(codes == 2),
        }


@dataclass(frozen=True, slots=True)
class BucketScheme:
    """Bucket edges (a value ``v`` falls in bucket ``searchsorted(edges, v, 'right')``)."""

    queue_edges: tuple[float, ...] = WAITING_EDGES
    kv_edges: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    prefix_edges: tuple[float, ...] = (0.25, 0.5, 0.75)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.queue_edges) + 1, len(self.kv_edges) + 1, len(self.prefix_edges) + 1)

    def buckets(self, features: FeatureColumns) -> npt.NDArray[np.int64]:
        """Flat load-bucket index per row (queue-major)."""
        q = np.searchsorted(self.queue_edges, features.values[NUM_REQUEST_WAITING], "right")
        k = np.searchsorted(self.kv_edges, features.values[KV_CACHE_PERCENTAGE], "right")
        p = np.searchsorted(self.prefix_edges, features.values[PREFIX_CACHE_SCORE], "right")
        _, nk, npf = self.shape
        return np.asarray((q * nk + k) * npf + p, dtype=np.int64)


# Columns kept per row in a bucket's ring: numeric features, targets, timestamp.
_WIDTH = len(NUMERIC_FEATURES) + 3


class _Ring:
    """Fixed-capacity FIFO of rows (oldest overwritten first)."""

    __slots__ = ("count", "data", "hashes", "pos")

    def __init__(self, capacity: int) -> None:
        self.data = np.empty((capacity, _WIDTH), dtype=np.float64)
        self.hashes = np.empty(capacity, dtype=np.uint64)
        self.pos = 0
        self.count = 0

    def push(self, rows: npt.NDArray[np.float64], hashes: U64) -> int:
        """Append rows; return how many rows (old, or the oldest of ``rows``) were dropped."""
        cap = len(self.data)
        overflow = max(0, len(rows) - cap)
        if overflow:
            rows, hashes = rows[-cap:], hashes[-cap:]
        m = len(rows)
        idx = (self.pos + np.arange(m)) % cap
        self.data[idx] = rows
        self.hashes[idx] = hashes
        self.pos = int((self.pos + m) % cap)
        evicted = max(0, self.count + m - cap)
        self.count = min(cap, self.count + m)
        return evicted + overflow

    def rows(self) -> tuple[npt.NDArray[np.float64], U64]:
        """Rows oldest first."""
        cap = len(self.data)
        if self.count < cap:
            return self.data[: self.count], self.hashes[: self.count]
        order = (self.pos + np.arange(cap)) % cap
        return self.data[order], self.hashes[order]


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Counts for ``/status`` and metrics."""

    rows: int
    buckets: int
    added: int
    evicted: int
    rows_by_segment: Mapping[str, int]


class TrainingBuffer:
    """Stratified, bounded store of request samples (see the module doc).

    Not thread-safe: the service serialises calls with its own lock.
    """

    def __init__(self, per_bucket: int = 2_000, scheme: BucketScheme | None = None) -> None:
        if per_bucket < 1:
            raise ValueError("per_bucket must be ≥ 1")
        self.per_bucket = per_bucket
        self.scheme = scheme or BucketScheme()
        self._rings: dict[tuple[str, int, int], _Ring] = {}
        self._added = 0
        self._evicted = 0

    def __len__(self) -> int:
        return sum(r.count for r in self._rings.values())

    def add(self, samples: RequestSamples) -> int:
        """Store ``samples``; return how many older rows were evicted to make room."""
        n = len(samples)
        if n == 0:
            return 0
        hashes = row_hashes(samples)
        load = self.scheme.buckets(samples.features)
        table = np.column_stack(
            [samples.features.values[name] for name in NUMERIC_FEATURES]
            + [samples.actual_ttft_ms, samples.actual_tpot_ms, samples.timestamp]
        )
        acc = np.asarray(samples.features.accelerator, dtype=object)
        evicted = 0
        for name in sorted(set(samples.features.accelerator)):
            in_acc = acc == name
            for code in np.unique(samples.features.pod_type[in_acc]).tolist():
                in_seg = in_acc & (samples.features.pod_type == code)
                for bucket in np.unique(load[in_seg]).tolist():
                    rows = np.flatnonzero(in_seg & (load == bucket))
                    key = (name, int(code), int(bucket))
                    ring = self._rings.get(key)
                    if ring is None:
                        ring = self._rings[key] = _Ring(self.per_bucket)
                    evicted += ring.push(table[rows], hashes[rows])
        self._added += n
        self._evicted += evicted
        return evicted

    def samples(self) -> tuple[RequestSamples, U64]:
        """Every stored row (grouped by bucket, oldest first within one) and its hash."""
        parts: list[RequestSamples] = []
        hashes: list[U64] = []
        for (name, code, _), ring in sorted(self._rings.items()):
            data, h = ring.rows()
            if not len(data):
                continue
            values = {n: data[:, j].copy() for j, n in enumerate(NUMERIC_FEATURES)}
            k = len(NUMERIC_FEATURES)
            features = FeatureColumns(
                values=values,
                pod_type=np.full(len(data), code, dtype=np.int8),
                accelerator=(name,) * len(data),
            )
            parts.append(
                RequestSamples(
                    features=features,
                    actual_ttft_ms=data[:, k].copy(),
                    actual_tpot_ms=data[:, k + 1].copy(),
                    timestamp=data[:, k + 2].copy(),
                )
            )
            hashes.append(h.copy())
        merged = RequestSamples.concat(parts)
        return merged, (np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64))

    def stats(self) -> BufferStats:
        by_segment: dict[str, int] = {}
        for (name, code, _), ring in self._rings.items():
            label = f"{name}/{POD_TYPE_BY_CODE[code].role}"
            by_segment[label] = by_segment.get(label, 0) + ring.count
        return BufferStats(
            rows=len(self),
            buckets=len(self._rings),
            added=self._added,
            evicted=self._evicted,
            rows_by_segment=dict(sorted(by_segment.items())),
        )
