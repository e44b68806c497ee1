"""Loader for the Azure LLM inference traces of 2023 (Splitwise, ISCA'24; CC-BY-4.0).

Why it exists: these are real production arrivals with real prompt and output lengths — bursty at
the second scale, one hour each for a conversation and a coding service — the most direct test of
how a policy copes with real traffic.

Format (``Azure/AzurePublicDataset``, ``data/AzureLLMInferenceTrace_{conv,code}.csv``)::

    TIMESTAMP,ContextTokens,GeneratedTokens
    2023-11-16 18:15:46.6805900,374,44

``TIMESTAMP`` is wall-clock text with 7 (in general: any number of) fractional digits, which
``datetime.strptime``'s ``%f`` (at most 6 digits) rejects. It is parsed vectorised: the whole-second
part by pandas with a fixed format, the fraction as an integer count of nanoseconds (first 9
digits, right-padded). Example: ``18:15:46.6805900`` → 46 s + ``680590000`` ns. A ``T`` between
date and time is accepted too. Rows need not be sorted: they are sorted stably by time (the
published files are already sorted). Arrivals are re-based so the first request arrives at 0 s;
the first timestamp is kept in ``meta["start_time"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from simulator.traces.assemble import trace_from_columns
from simulator.traces.reading import CsvTable, read_csv_table, token_column, trace_stem
from simulator.workload import Trace

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

_TIMESTAMP = r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$"
_NS_DIGITS = 9


def load_azure_csv(path: str | Path, *, name: str | None = None) -> Trace:
    """Load an Azure LLM inference 2023 CSV (plain or gzip) as a trace starting at 0 s."""
    path = Path(path)
    table = read_csv_table(path)
    return azure_trace_from_table(table, name=name)


def azure_trace_from_table(table: CsvTable, *, name: str | None = None) -> Trace:
    """Build the trace from an already read CSV table (used by format detection)."""
    table.require(*AZURE_COLUMNS)
    epoch_ns = parse_timestamps_ns(table, "TIMESTAMP")
    context = token_column(table, "ContextTokens")
    generated = token_column(table, "GeneratedTokens")
    start_ns = int(epoch_ns.min())
    arrival_s = (epoch_ns - start_ns).astype(np.float64) / 1e9
    start_text = str(np.datetime64(start_ns, "ns"))
    return trace_from_columns(
        name or trace_stem(table.path),
        arrival_s,
        context,
        generated,
        source=str(table.path),
        meta={"format": "azure-2023", "rows": str(len(table)), "start_time": start_text},
    )


def parse_timestamps_ns(table: CsvTable, column: str) -> npt.NDArray[np.int64]:
    """``YYYY-MM-DD HH:MM:SS[.fraction]`` text → integer nanoseconds since the Unix epoch."""
    cells = table.text(column)
    parts = cells.str.extract(_TIMESTAMP)
    whole_text = parts[0] + " " + parts[1]
    whole = pd.to_datetime(whole_text, format="%Y-%m-%d %H:%M:%S", errors="coerce").to_numpy(
        dtype="datetime64[s]"
    )
    bad = np.isnat(whole)
    if bad.any():
        row = int(np.argmax(bad))
        reason = "missing value" if cells.iloc[row] == "" else "not a timestamp"
        table.fail(row, f"{reason} (expected 'YYYY-MM-DD HH:MM:SS.fff')", column, cells.iloc[row])
    fraction = parts[2].fillna("").str.slice(0, _NS_DIGITS).str.ljust(_NS_DIGITS, "0")
    frac_ns = fraction.to_numpy(dtype=str).astype(np.int64)
    seconds = whole.astype("datetime64[s]").astype(np.int64)
    return np.asarray(seconds * 1_000_000_000 + frac_ns, dtype=np.int64)
