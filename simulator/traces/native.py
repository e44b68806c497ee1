"""sloscaler's own trace CSV: users write their traffic in it, and any trace can be exported to it.

Why it exists: users bring traffic from their own gateways and logs; one plain CSV with the fields
the simulator needs (and nothing vendor-specific) is the smallest thing to ask of them. Writing
every trace — real or generated — in the same format makes runs reproducible and diffable.

Columns (header required, any order, unknown columns ignored)::

    arrival_s,input_tokens,output_tokens[,prefix_id,prefix_tokens][,priority][,model]
    0.0,1200,150,support-bot,800,0,llama-3-8b
    0.35,90,40,,,-1,llama-3-8b

* ``arrival_s`` — seconds (float, ``>= 0``). Rows may be in any order; they are sorted stably and,
  by default, re-based so the first request arrives at 0 s.
* ``input_tokens``, ``output_tokens`` — integers ``>= 1``.
* ``prefix_id`` — any text or integer; requests with the same id share their first
  ``prefix_tokens`` prompt tokens (``prefix_tokens`` is then required; it is capped at the prompt).
  Mapped to ``prefix_ids = (stable_int_hash(prefix_id),)``, ``prefix_unit_tokens = prefix_tokens``.
  Empty: no shared prefix.
* ``priority`` — integer, empty = 0; negative = sheddable.
* ``model`` — text, empty = none.

Exact form for chained prefixes (what Mooncake's ``hash_ids`` describe, where requests can share
*part* of a prefix): instead of ``prefix_id,prefix_tokens`` use ``prefix_ids`` (integer unit ids
separated by spaces) and ``prefix_unit_tokens``, which map one-to-one onto
:class:`~simulator.workload.RequestSpec`. :func:`write_native_csv` uses the simple form when every
request has at most one prefix unit and the exact form otherwise, so write → load returns the same
requests. Floats are written with Python's shortest round-trip ``repr``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from simulator.traces.assemble import trace_from_columns
from simulator.traces.errors import TraceFormatError
from simulator.traces.reading import (
    CsvTable,
    float_column,
    int_column,
    read_csv_table,
    token_column,
    trace_stem,
)
from simulator.workload import RequestSpec, Trace

NATIVE_REQUIRED = ("arrival_s", "input_tokens", "output_tokens")
NATIVE_OPTIONAL = (
    "prefix_id",
    "prefix_tokens",
    "prefix_ids",
    "prefix_unit_tokens",
    "priority",
    "model",
)

_DECIMAL = re.compile(r"^[0-9]+$")
_HASH_MASK = (1 << 63) - 1

_IdParser = Callable[[CsvTable, int, str, str], tuple[int, ...]]


def stable_int_hash(prefix_id: str | int) -> int:
    """A prefix id as a non-negative integer, the same in every process and on every machine.

    Integer ids (and text of decimal digits) map to themselves, so numeric ids survive a round trip
    and can mix with Mooncake-style unit ids; other text maps to the first 8 bytes of its BLAKE2b
    digest, masked to 63 bits. Example: ``stable_int_hash("42") == 42`` and
    ``stable_int_hash("support-bot")`` is the same large integer in every run (unlike ``hash()``,
    which is salted per process).
    """
    if isinstance(prefix_id, int):
        if prefix_id < 0:
            raise ValueError("integer prefix ids must be non-negative")
        return prefix_id
    text = prefix_id.strip()
    if _DECIMAL.match(text):
        return int(text)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _HASH_MASK


def load_native_csv(path: str | Path, *, name: str | None = None, rebase: bool = True) -> Trace:
    """Load a native CSV (plain or gzip); ``rebase=False`` keeps the file's times unchanged."""
    path = Path(path)
    return native_trace_from_table(read_csv_table(path), name=name, rebase=rebase)


def native_trace_from_table(
    table: CsvTable, *, name: str | None = None, rebase: bool = True
) -> Trace:
    """Build the trace from an already read CSV table (used by format detection)."""
    table.require(*NATIVE_REQUIRED)
    arrivals = float_column(table, "arrival_s", minimum=0.0)
    inputs = token_column(table, "input_tokens")
    outputs = token_column(table, "output_tokens")
    priority = (
        int_column(table, "priority", minimum=None, allow_empty=True)
        if table.has("priority")
        else None
    )
    model = None
    if table.has("model"):
        model = [m if m else None for m in table.text("model").tolist()]
    prefix_ids, units = _prefixes(table)
    return trace_from_columns(
        name or trace_stem(table.path),
        arrivals,
        inputs,
        outputs,
        priority=priority,
        model=model,
        prefix_ids=prefix_ids,
        prefix_unit_tokens=units,
        source=str(table.path),
        meta={"format": "native", "rows": str(len(table))},
        rebase=rebase,
    )


def _prefixes(table: CsvTable) -> tuple[list[tuple[int, ...]] | None, np.ndarray | None]:
    simple = table.has("prefix_id") or table.has("prefix_tokens")
    exact = table.has("prefix_ids") or table.has("prefix_unit_tokens")
    if simple and exact:
        raise TraceFormatError(
            table.path,
            "use either prefix_id/prefix_tokens or prefix_ids/prefix_unit_tokens, not both",
            line=1,
        )
    if simple:
        return _paired(table, "prefix_id", "prefix_tokens", _single_id)
    if exact:
        return _paired(table, "prefix_ids", "prefix_unit_tokens", _unit_ids)
    return None, None


def _paired(
    table: CsvTable,
    id_column: str,
    tokens_column: str,
    parse: _IdParser,
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    table.require(id_column, tokens_column)
    ids_text = table.text(id_column).tolist()
    tokens = int_column(table, tokens_column, minimum=1, allow_empty=True, empty_value=0)
    tokens_text = table.text(tokens_column).tolist()
    ids: list[tuple[int, ...]] = []
    for row, (text, count) in enumerate(zip(ids_text, tokens_text, strict=True)):
        if not text:
            if count:
                table.fail(row, f"{tokens_column} given without {id_column}", tokens_column, count)
            ids.append(())
            continue
        if not count:
            table.fail(row, f"{tokens_column} is required when {id_column} is set", tokens_column)
        ids.append(parse(table, row, id_column, text))
    return ids, np.where([bool(i) for i in ids], tokens, 0)


def _single_id(_table: CsvTable, _row: int, _column: str, text: str) -> tuple[int, ...]:
    return (stable_int_hash(text),)


def _unit_ids(table: CsvTable, row: int, column: str, text: str) -> tuple[int, ...]:
    parts = text.split()
    if not all(_DECIMAL.match(p) for p in parts):
        table.fail(row, "expected non-negative integers separated by spaces", column, text)
    return tuple(int(p) for p in parts)


def write_native_csv(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` as a native CSV (gzip-compressed when the name ends in ``.gz``).

    Optional columns appear only when some request needs them: ``priority`` if any is non-zero,
    ``model`` if any is set, and the prefix columns (simple or exact form) if any request has a
    shared prefix. A request whose prefix units have 0 tokens shares nothing and is written without
    a prefix. Returns the path written.
    """
    path = Path(path)
    reqs = trace.requests
    with_priority = any(r.priority != 0 for r in reqs)
    with_model = any(r.model is not None for r in reqs)
    with_prefix = any(_has_prefix(r) for r in reqs)
    exact = any(len(r.prefix_ids) > 1 for r in reqs if _has_prefix(r))
    header = list(NATIVE_REQUIRED)
    if with_prefix:
        header += ["prefix_ids", "prefix_unit_tokens"] if exact else ["prefix_id", "prefix_tokens"]
    if with_priority:
        header.append("priority")
    if with_model:
        header.append("model")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in reqs:
        row: list[object] = [repr(float(r.arrival_s)), r.input_tokens, r.output_tokens]
        if with_prefix:
            if _has_prefix(r):
                row += [" ".join(str(i) for i in r.prefix_ids), r.prefix_unit_tokens]
            else:
                row += ["", ""]
        if with_priority:
            row.append(r.priority)
        if with_model:
            row.append("" if r.model is None else r.model)
        writer.writerow(row)
    data = buffer.getvalue().encode("utf-8")
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _has_prefix(request: RequestSpec) -> bool:
    return bool(request.prefix_ids) and request.prefix_unit_tokens > 0
