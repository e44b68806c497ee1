"""Observed request samples (features plus actual TTFT/TPOT) and their CSV form.

Why this module exists: the same table flows through every path — the gateway's
``/add_training_data_bulk`` posts, the training buffer, ``sloscaler predictor train|eval`` CSV
files and the benchmarks — so it is defined once, column-oriented (numpy arrays, so a million rows
is cheap), with unknown targets as NaN rather than zero. The CSV reader validates every cell and
reports the first bad one by file, line and column.

CSV columns: the llm-d feature names (``kv_cache_percentage``, ``input_token_length``,
``num_request_waiting``, ``num_request_running`` and ``prefix_cache_score`` required;
``prefill_tokens_in_flight``, ``decode_tokens_in_flight``, ``num_tokens_generated`` default 0;
``pod_type`` default ``''``), ``accelerator`` (default ``''``), and the targets ``actual_ttft_ms``,
``actual_tpot_ms`` (at least one present; an empty cell means unknown). ``timestamp`` (seconds) is
optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from predictor.features import (
    ACCELERATOR,
    FRACTION_FEATURES,
    NUMERIC_FEATURES,
    POD_TYPE,
    POD_TYPE_BY_CODE,
    FeatureColumns,
    FloatArray,
    PodType,
    Target,
)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "kv_cache_percentage",
    "input_token_length",
    "num_request_waiting",
    "num_request_running",
    "prefix_cache_score",
)
TARGET_COLUMNS: tuple[str, ...] = (Target.TTFT.actual_column, Target.TPOT.actual_column)
TIMESTAMP = "timestamp"


class SampleFormatError(ValueError):
    """A sample file or payload that cannot be read; the message names file, line and column."""


@dataclass(frozen=True)
class RequestSamples:
    """Rows of (features, actual TTFT ms, actual TPOT ms, timestamp s); NaN marks unknown."""

    features: FeatureColumns
    actual_ttft_ms: FloatArray
    actual_tpot_ms: FloatArray
    timestamp: FloatArray

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in ("actual_ttft_ms", "actual_tpot_ms", "timestamp"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.features)

    def actual(self, target: Target) -> FloatArray:
        """Observed values of ``target`` in ms (NaN where unknown)."""
        return self.actual_ttft_ms if target is Target.TTFT else self.actual_tpot_ms

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> RequestSamples:
        """The rows selected by an integer index or boolean mask."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else index
        return RequestSamples(
            features=self.features.take(idx),
            actual_ttft_ms=self.actual_ttft_ms[idx],
            actual_tpot_ms=self.actual_tpot_ms[idx],
            timestamp=self.timestamp[idx],
        )

    @property
    def accelerators(self) -> tuple[str, ...]:
        """Distinct accelerator labels, sorted."""
        return tuple(sorted(set(self.features.accelerator)))

    @classmethod
    def build(
        cls,
        features: FeatureColumns,
        actual_ttft_ms: npt.ArrayLike | None = None,
        actual_tpot_ms: npt.ArrayLike | None = None,
        timestamp: npt.ArrayLike | None = None,
    ) -> RequestSamples:
        """Samples from features and optional target arrays (missing ones are all-NaN)."""
        n = len(features)

        def column(values: npt.ArrayLike | None) -> FloatArray:
            if values is None:
                return np.full(n, np.nan)
            return np.asarray(values, dtype=np.float64).reshape(-1)

        return cls(
            features=features,
            actual_ttft_ms=column(actual_ttft_ms),
            actual_tpot_ms=column(actual_tpot_ms),
            timestamp=column(timestamp),
        )

    @classmethod
    def concat(cls, parts: Sequence[RequestSamples]) -> RequestSamples:
        """Rows of several sample sets, in order."""
        if not parts:
            return cls.build(FeatureColumns.concat([]))
        return cls(
            features=FeatureColumns.concat([p.features for p in parts]),
            actual_ttft_ms=np.concatenate([p.actual_ttft_ms for p in parts]),
            actual_tpot_ms=np.concatenate([p.actual_tpot_ms for p in parts]),
            timestamp=np.concatenate([p.timestamp for p in parts]),
        )

    def to_frame(self) -> pd.DataFrame:
        """The samples as a DataFrame with the CSV column names."""
        data: dict[str, object] = {n: self.features.values[n] for n in NUMERIC_FEATURES}
        data[POD_TYPE] = [POD_TYPE_BY_CODE[int(c)].value for c in self.features.pod_type]
        data[ACCELERATOR] = list(self.features.accelerator)
        data[Target.TTFT.actual_column] = self.actual_ttft_ms
        data[Target.TPOT.actual_column] = self.actual_tpot_ms
        data[TIMESTAMP] = self.timestamp
        return pd.DataFrame(data)


def write_samples_csv(samples: RequestSamples, path: Path) -> None:
    """Write ``samples`` as CSV (NaN targets become empty cells)."""
    samples.to_frame().to_csv(path, index=False, na_rep="")


def _numeric(frame: pd.DataFrame, column: str, path: Path, *, optional_empty: bool) -> FloatArray:
    raw = frame[column].str.strip()
    values: FloatArray = np.asarray(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
    empty = (raw == "").to_numpy()
    bad = np.isnan(values) & ~(empty & optional_empty)
    bad |= np.isinf(values)
    finite = ~np.isnan(values)
    bad |= finite & (values < 0)
    if column in FRACTION_FEATURES:
        bad |= finite & (values > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = frame[column].iloc[i]
        want = "a number in [0, 1]" if column in FRACTION_FEATURES else "a number ≥ 0"
        if optional_empty:
            want += " or empty"
        raise SampleFormatError(
            f"{path}: line {i + 2}, column {column}: expected {want}, got {cell!r}"
        )
    return values


def read_samples_csv(path: Path) -> RequestSamples:
    """Read and validate a sample CSV (see the module doc for its columns)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise SampleFormatError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SampleFormatError(f"{path}: not a readable CSV file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SampleFormatError(f"{path}: line 1: missing column {missing[0]}")
    if not any(c in frame.columns for c in TARGET_COLUMNS):
        raise SampleFormatError(
            f"{path}: line 1: needs at least one of the columns {', '.join(TARGET_COLUMNS)}"
        )
    n = len(frame)
    values: dict[str, FloatArray] = {}
    for name in NUMERIC_FEATURES:
        values[name] = (
            _numeric(frame, name, path, optional_empty=False) if name in frame else np.zeros(n)
        )
    codes = np.zeros(n, dtype=np.int8)
    if POD_TYPE in frame:
        allowed = {p.value: p.code for p in PodType}
        for i, cell in enumerate(frame[POD_TYPE].str.strip().tolist()):
            if cell not in allowed:
                raise SampleFormatError(
                    f"{path}: line {i + 2}, column {POD_TYPE}: expected '', 'prefill' or "
                    f"'decode', got {cell!r}"
                )
            codes[i] = allowed[cell]
    accelerator = (
        tuple(frame[ACCELERATOR].str.strip().tolist()) if ACCELERATOR in frame else ("",) * n
    )
    targets = {
        c: _numeric(frame, c, path, optional_empty=True) if c in frame else np.full(n, np.nan)
        for c in TARGET_COLUMNS
    }
    timestamp = (
        _numeric(frame, TIMESTAMP, path, optional_empty=True)
        if TIMESTAMP in frame
        else np.full(n, np.nan)
    )
    return RequestSamples(
        features=FeatureColumns(values=values, pod_type=codes, accelerator=accelerator),
        actual_ttft_ms=targets[Target.TTFT.actual_column],
        actual_tpot_ms=targets[Target.TPOT.actual_column],
        timestamp=timestamp,
    )
