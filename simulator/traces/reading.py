"""Reading trace files into text and typed columns, with every failure mapped to a file and line.

All loaders share the same needs: accept plain or gzip-compressed files (recognised by their magic
bytes, not their name), read CSV fast (pandas' C tokenizer, everything as text first), and convert
columns to numbers vectorised while still being able to say *which* row holds the bad value. This
module is the one place where ``OSError``, ``gzip``, ``UnicodeDecodeError`` and pandas parser errors
are translated into :class:`TraceFormatError`.

Line numbers: a CSV is read with blank lines kept, so data row ``i`` (0-based) is file line
``i + 2`` (the header is line 1). Blank lines are dropped after numbering. Quoted fields spanning
several lines are not supported by any of the formats here.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from simulator.traces.errors import TraceFormatError

GZIP_MAGIC = b"\x1f\x8b"

_PANDAS_LINE = re.compile(r"line (\d+)")


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (whatever its name says)."""
    try:
        with path.open("rb") as fh:
            return fh.read(2) == GZIP_MAGIC
    except FileNotFoundError:
        raise TraceFormatError(path, "file not found") from None
    except OSError as err:
        raise TraceFormatError(path, f"cannot read file: {err.strerror or err}") from None


def read_text(path: Path) -> str:
    """The whole file as text, decompressed if it is gzip; UTF-8 (a BOM is tolerated)."""
    compressed = is_gzip(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise TraceFormatError(path, f"cannot read gzip stream: {err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise TraceFormatError(path, "not UTF-8 text", line=line) from None


def strip_compression_suffix(path: Path) -> str:
    """The file name's format suffix without ``.gz``: ``a.csv.gz`` → ``.csv``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def trace_stem(path: Path) -> str:
    """File name without ``.gz`` and format suffix: ``conv.csv.gz`` → ``conv``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name.rsplit(".", 1)[0] if "." in name else name


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A CSV file read as text cells: non-blank rows, their file line numbers, the header."""

    path: Path
    header: tuple[str, ...]
    frame: pd.DataFrame
    lines: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.frame)

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def require(self, *columns: str) -> None:
        """Raise naming the first required column the header lacks."""
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise TraceFormatError(
                self.path,
                f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
                f"header has {', '.join(repr(h) for h in self.header)}",
                line=1,
            )

    def text(self, column: str) -> pd.Series:
        """A column's cells, stripped of surrounding whitespace."""
        return self.frame[column].str.strip()

    def fail(self, row: int, reason: str, column: str | None = None, value: object = None) -> None:
        """Raise for data row ``row`` (0-based position in the table)."""
        raise TraceFormatError(
            self.path, reason, line=int(self.lines[row]), column=column, value=value
        )


def read_csv_table(path: Path, text: str | None = None) -> CsvTable:
    """Read a CSV file (plain or gzip) as text cells, or raise :class:`TraceFormatError`.

    An empty file or a header without data rows is an error here: no format has an empty trace.
    """
    if text is None:
        text = read_text(path)
    if not text.strip():
        raise TraceFormatError(path, "file is empty", line=1)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
        )
    except pd.errors.ParserError as err:
        match = _PANDAS_LINE.search(str(err))
        line = int(match.group(1)) if match else None
        reason = "wrong number of fields"
        detail = str(err).split("error:", 1)[-1].strip()
        raise TraceFormatError(path, f"{reason}: {detail}", line=line) from None
    except (pd.errors.EmptyDataError, ValueError) as err:
        raise TraceFormatError(path, f"not a CSV file: {err}", line=1) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    header = tuple(frame.columns)
    lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    if len(frame):
        blank = (frame.apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
        if blank.any():
            frame = frame.loc[~blank].reset_index(drop=True)
            lines = lines[~blank]
    if len(frame) == 0:
        raise TraceFormatError(path, "no data rows after the header: the trace is empty", line=1)
    return CsvTable(path=path, header=header, frame=frame, lines=lines)


def float_column(
    table: CsvTable,
    column: str,
    *,
    minimum: float | None = 0.0,
    allow_empty: bool = False,
) -> npt.NDArray[np.float64]:
    """A column as finite floats (NaN for empty cells if ``allow_empty``), checked >= minimum."""
    cells = table.text(column)
    values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    empty = (cells == "").to_numpy()
    bad = ~np.isfinite(values) & ~(empty & allow_empty)
    if bad.any():
        row = int(np.argmax(bad))
        reason = "missing value" if empty[row] else "not a finite number"
        table.fail(row, reason, column, cells.iloc[row])
    if minimum is not None:
        low = values < minimum
        if low.any():
            row = int(np.argmax(low))
            reason = "negative value" if values[row] < 0 else f"must be at least {minimum:g}"
            table.fail(row, reason, column, cells.iloc[row])
    return np.asarray(values, dtype=np.float64)


def int_column(
    table: CsvTable,
    column: str,
    *,
    minimum: int | None = 0,
    allow_empty: bool = False,
    empty_value: int = 0,
) -> npt.NDArray[np.int64]:
    """A column as integers (``12`` and ``12.0`` accepted, ``12.5`` not), checked ``>= minimum``."""
    values = float_column(table, column, minimum=None, allow_empty=allow_empty)
    cells = table.text(column)
    empty = np.isnan(values)
    fractional = ~empty & (values != np.floor(np.where(empty, 0.0, values)))
    if fractional.any():
        row = int(np.argmax(fractional))
        table.fail(row, "not an integer", column, cells.iloc[row])
    ints = np.where(empty, empty_value, values).astype(np.int64)
    if minimum is not None:
        low = ~empty & (ints < minimum)
        if low.any():
            row = int(np.argmax(low))
            reason = "negative value" if ints[row] < 0 else f"must be at least {minimum}"
            table.fail(row, reason, column, cells.iloc[row])
    return ints


def token_column(table: CsvTable, column: str) -> npt.NDArray[np.int64]:
    """A token-count column: integers ``>= 1`` (a request has at least one token in and out)."""
    return int_column(table, column, minimum=1)
