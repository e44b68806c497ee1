"""One entry point that opens any supported trace file: ``load_trace(path) -> Trace``.

Why it exists: the CLI and the benchmarks take a trace path from the user and should not make them
say what format it is. The format is decided from the name and then the content:

1. ``.gz`` is ignored for the decision (compression is recognised by the file's magic bytes).
2. ``.jsonl`` → Mooncake JSONL.
3. ``.csv`` → by the header: ``TIMESTAMP``/``ContextTokens``/``GeneratedTokens`` → Azure 2023;
   ``timestamp_s``/``total_rate_rps`` → ServeGen aggregate curve (turned into requests with
   :data:`~simulator.traces.servegen.SERVEGEN_DEFAULTS`); ``arrival_s`` → native.
4. Any other name: a first non-blank character ``{`` → Mooncake JSONL, else the CSV header rules.

A header matching none of them is a :class:`TraceFormatError` on line 1. A header that matches a
format but lacks some of its columns is reported as that format's missing columns.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from simulator.traces.azure import azure_trace_from_table
from simulator.traces.bundled import bundled_entry_for, bundled_info, bundled_trace
from simulator.traces.errors import TraceFormatError
from simulator.traces.mooncake import mooncake_trace_from_text
from simulator.traces.native import native_trace_from_table
from simulator.traces.reading import (
    CsvTable,
    read_csv_table,
    read_text,
    strip_compression_suffix,
)
from simulator.traces.servegen import (
    SERVEGEN_DEFAULTS,
    generate_servegen_trace,
    servegen_curves_from_table,
)
from simulator.workload import Trace


class TraceFormat(StrEnum):
    """The file formats :func:`load_trace` understands."""

    AZURE = "azure-2023"
    MOONCAKE = "mooncake"
    SERVEGEN = "servegen-aggregate"
    NATIVE = "native"


# A format is recognised by any of its signature columns; the loader then checks all of them.
_SIGNATURES: tuple[tuple[TraceFormat, frozenset[str]], ...] = (
    (TraceFormat.AZURE, frozenset({"TIMESTAMP", "ContextTokens", "GeneratedTokens"})),
    (TraceFormat.SERVEGEN, frozenset({"timestamp_s", "total_rate_rps"})),
    (TraceFormat.NATIVE, frozenset({"arrival_s"})),
)


def detect_format(path: str | Path) -> TraceFormat:
    """The format of a trace file, decided exactly as :func:`load_trace` decides it."""
    path = Path(path)
    fmt, _ = _detect(path, read_text(path))
    return fmt


def load_trace(path: str | Path, *, name: str | None = None) -> Trace:
    """Load any supported trace file (plain or gzip) as a :class:`Trace` sorted by arrival.

    Real traces are re-based to start at 0 s; a ServeGen curve is turned into requests with
    :data:`~simulator.traces.servegen.SERVEGEN_DEFAULTS`. A shipped trace gets its bundled name and
    an ``attribution`` entry in ``meta``.
    """
    path = Path(path)
    entry = bundled_entry_for(path) if path.exists() else None
    if name is None and entry is not None:
        name = entry.name
    text = read_text(path)
    fmt, table = _detect(path, text)
    if table is None:  # JSONL: the only format that is not a CSV table
        trace = mooncake_trace_from_text(path, text, name=name)
    elif fmt is TraceFormat.AZURE:
        trace = azure_trace_from_table(table, name=name)
    elif fmt is TraceFormat.SERVEGEN:
        curves = servegen_curves_from_table(table, name=name)
        trace = generate_servegen_trace(curves, SERVEGEN_DEFAULTS)
    else:
        trace = native_trace_from_table(table, name=name)
    if entry is not None:
        trace.meta["attribution"] = entry.attribution
    return trace


def load_bundled(name: str) -> Trace:
    """Load a shipped trace by name, e.g. ``load_bundled("azure-conv-2023")``."""
    bundled_info(name)
    return load_trace(bundled_trace(name), name=name)


def _detect(path: Path, text: str) -> tuple[TraceFormat, CsvTable | None]:
    """The format, and for CSV formats the table already read (so the file is parsed once)."""
    suffix = strip_compression_suffix(path)
    if suffix == ".jsonl" or (suffix != ".csv" and text.lstrip().startswith("{")):
        return TraceFormat.MOONCAKE, None
    table = read_csv_table(path, text)
    columns = set(table.header)
    for fmt, signature in _SIGNATURES:
        if columns & signature:
            return fmt, table
    raise TraceFormatError(
        path,
        "unknown trace format: the header matches none of Azure 2023 (TIMESTAMP,ContextTokens,"
        "GeneratedTokens), ServeGen (timestamp_s,total_rate_rps,...), native (arrival_s,"
        "input_tokens,output_tokens); JSONL needs a .jsonl name or '{' first",
        line=1,
        value=",".join(table.header),
    )
