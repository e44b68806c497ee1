"""Turning column arrays into a :class:`Trace`: stable sort by arrival, re-base, build requests.

Loaders and generators work on numpy columns (fast, vectorised checks) and meet the engine's types
only here, so every trace is built the same way: requests ordered by arrival (ties keep file
order, ``kind="stable"``) and, for loaded files, times shifted so the first request arrives at 0 s.
Example: arrivals ``[12.5, 10.0, 11.0]`` become ``[0.0, 1.0, 2.5]`` (rows 2, 3, 1 of the file).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simulator.workload import RequestSpec, Trace


def trace_from_columns(
    name: str,
    arrival_s: npt.ArrayLike,
    input_tokens: npt.ArrayLike,
    output_tokens: npt.ArrayLike,
    *,
    priority: npt.ArrayLike | None = None,
    model: Sequence[str | None] | None = None,
    prefix_ids: Sequence[tuple[int, ...]] | None = None,
    prefix_unit_tokens: npt.ArrayLike | None = None,
    source: str = "",
    meta: dict[str, str] | None = None,
    rebase: bool = True,
) -> Trace:
    """Build a sorted (and by default re-based) trace from equally long columns."""
    arrivals = np.asarray(arrival_s, dtype=np.float64)
    order = np.argsort(arrivals, kind="stable")
    arrivals = arrivals[order]
    if rebase and arrivals.size:
        arrivals = arrivals - arrivals[0]
    n = arrivals.size
    ins = np.asarray(input_tokens, dtype=np.int64)[order].tolist()
    outs = np.asarray(output_tokens, dtype=np.int64)[order].tolist()
    prios = [0] * n if priority is None else np.asarray(priority, dtype=np.int64)[order].tolist()
    models: list[str | None] = [None] * n if model is None else [model[i] for i in order]
    prefixes: list[tuple[int, ...]] = (
        [()] * n if prefix_ids is None else [prefix_ids[i] for i in order]
    )
    units = (
        [0] * n
        if prefix_unit_tokens is None
        else np.asarray(prefix_unit_tokens, dtype=np.int64)[order].tolist()
    )
    requests = tuple(
        RequestSpec(t, i, o, p, m, ids, u)
        for t, i, o, p, m, ids, u in zip(
            arrivals.tolist(), ins, outs, prios, models, prefixes, units, strict=True
        )
    )
    return Trace(name=name, requests=requests, source=source, meta=dict(meta or {}))


def trace_columns(
    trace: Trace,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A trace's arrival times and token counts as arrays (for statistics and resampling)."""
    reqs = trace.requests
    return (
        np.fromiter((r.arrival_s for r in reqs), dtype=np.float64, count=len(reqs)),
        np.fromiter((r.input_tokens for r in reqs), dtype=np.int64, count=len(reqs)),
        np.fromiter((r.output_tokens for r in reqs), dtype=np.int64, count=len(reqs)),
    )
