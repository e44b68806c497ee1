"""Loader for Mooncake's JSONL request traces (kvcache-ai/Mooncake, FAST'25; Apache-2.0).

Why it exists: it is the public trace with real *prefix structure* — long prompts (mean ≈15k
tokens) that share leading KV blocks — which is what prefix-aware routing and KV capacity planning
are about.

Format (``FAST25-release/traces/synthetic_trace.jsonl``), one JSON object per line::

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]}

``timestamp`` is milliseconds from the start of the trace; ``hash_ids`` are ids of the prompt's
512-token blocks, chained so that equal leading ids mean an equal prefix. They map one-to-one
onto :class:`~simulator.workload.RequestSpec`: ``prefix_ids=tuple(hash_ids)``,
``prefix_unit_tokens=512``.
Example: ``input_length=1500, hash_ids=[7, 9, 12]`` shares tokens 0–1023 with any request starting
``[7, 9, ...]``; the third block is only partly filled (1500 − 1024 = 476 tokens).

``hash_ids`` may be absent (no shareable prefix). Lines need not be ordered: requests are sorted
stably by timestamp (the published file is ordered) and re-based so the first arrives at 0 s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulator.traces.assemble import trace_from_columns
from simulator.traces.errors import TraceFormatError
from simulator.traces.reading import read_text, trace_stem
from simulator.workload import Trace

MOONCAKE_BLOCK_TOKENS = 512
"""Tokens per ``hash_ids`` entry in the Mooncake traces."""

MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


def load_mooncake_jsonl(
    path: str | Path,
    *,
    name: str | None = None,
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
) -> Trace:
    """Load a Mooncake JSONL trace (plain or gzip) as a trace starting at 0 s."""
    path = Path(path)
    return mooncake_trace_from_text(path, read_text(path), name=name, block_tokens=block_tokens)


def mooncake_trace_from_text(
    path: Path, text: str, *, name: str | None = None, block_tokens: int = MOONCAKE_BLOCK_TOKENS
) -> Trace:
    """Parse already read JSONL text (used by format detection, which has read the file)."""
    arrivals: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    prefixes: list[tuple[int, ...]] = []
    decode = json.JSONDecoder().decode
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = decode(line)
        except json.JSONDecodeError as err:
            raise TraceFormatError(
                path, f"invalid JSON: {err.msg} at character {err.pos + 1}", line=line_no
            ) from None
        if not isinstance(record, dict):
            raise TraceFormatError(
                path, "expected a JSON object per line", line=line_no, value=line.strip()
            )
        for key in MOONCAKE_KEYS:
            if key not in record:
                raise TraceFormatError(path, "missing required key", line=line_no, column=key)
        arrivals.append(_timestamp_ms(path, line_no, record["timestamp"]) / 1000.0)
        inputs.append(_tokens(path, line_no, "input_length", record["input_length"]))
        outputs.append(_tokens(path, line_no, "output_length", record["output_length"]))
        prefixes.append(_hash_ids(path, line_no, record.get("hash_ids")))
    if not arrivals:
        raise TraceFormatError(path, "no requests in file: the trace is empty", line=1)
    return trace_from_columns(
        name or trace_stem(path),
        arrivals,
        inputs,
        outputs,
        prefix_ids=prefixes,
        prefix_unit_tokens=[block_tokens if ids else 0 for ids in prefixes],
        source=str(path),
        meta={
            "format": "mooncake",
            "rows": str(len(arrivals)),
            "prefix_unit_tokens": str(block_tokens),
        },
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _timestamp_ms(path: Path, line: int, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise TraceFormatError(
            path, "not a finite number", line=line, column="timestamp", value=json.dumps(value)
        )
    if value < 0:
        raise TraceFormatError(path, "negative time", line=line, column="timestamp", value=value)
    return float(value)


def _tokens(path: Path, line: int, key: str, value: Any) -> int:
    if type(value) is int:
        tokens = value
    elif _is_number(value) and math.isfinite(value) and float(value).is_integer():
        tokens = int(value)
    else:
        raise TraceFormatError(
            path, "not an integer", line=line, column=key, value=json.dumps(value)
        )
    if tokens < 1:
        reason = "negative value" if tokens < 0 else "must be at least 1"
        raise TraceFormatError(path, reason, line=line, column=key, value=value)
    return tokens


def _hash_ids(path: Path, line: int, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TraceFormatError(
            path,
            "expected a list of integers",
            line=line,
            column="hash_ids",
            value=json.dumps(value),
        )
    ids = tuple(value)
    if not all(type(h) is int for h in ids):
        bad = next(h for h in ids if type(h) is not int)
        raise TraceFormatError(
            path, "block id is not an integer", line=line, column="hash_ids", value=json.dumps(bad)
        )
    return ids
