"""Traces from ServeGen's production load curves (alibaba/ServeGen, Apache-2.0).

Why it exists: the Azure and Mooncake traces cover one hour; autoscaling is about days — the diurnal
swing, the weekly pattern, the night trough where scale-to-zero pays off. ServeGen publishes 14 days
of a production LLM service as aggregate curves, one row per 600 s window::

    timestamp_s,total_rate_rps,active_clients,rate_share_with_length_data,mean_input_tokens,mean_output_tokens
    0,212.78,43,0.6754,355.434,292.508

The curves are real; the individual requests are drawn here. This module turns a curve into a trace:

1. **Select** ``[start_s, start_s + duration_s)`` of the curve (in the curve's own time; windows
   cut by the bounds are kept partially). Window ``i`` spans ``[t_i, t_{i+1})``; the last one is as
   long as the one before it (600 s for the published files).
2. **Compress time** by ``time_compression = k``: every window is shortened ``k``-fold and keeps
   its rate, so the *shape* of the load over time is preserved and its *level* is set by step 3
   only. Example: a 24 h day with ``k = 24`` plays in 1 h; each 600 s window lasts 25 s. At the
   same rates, the compressed trace has ``k`` times fewer requests than the uncompressed one.
3. **Scale** rates by exactly one of: ``scale`` (a multiplier on the published rates),
   ``target_mean_rps`` (the time-weighted mean of the selection becomes this), ``target_peak_rps``
   (its busiest window becomes this). Example: the first day of m-large has mean ≈ 279 rps; a
   target mean of 5 rps multiplies every window by ≈ 0.018.
4. **Arrivals** inside each window: Poisson (``cv = 1``) or gamma gaps with CV ``cv`` (see
   :mod:`simulator.traces.arrivals`; ``shape = 1/CV²``, ``scale = CV²/rate``).
5. **Lengths** lognormal around the window's ``mean_input_tokens`` / ``mean_output_tokens`` with
   spreads ``sigma_input`` / ``sigma_output`` (``μ = ln(mean) − σ²/2``), rounded and clipped to
   ``[1, max_*_tokens]``. Windows without length data (empty cells; in m-small they are exactly the
   windows with rate 0) fall back to the rate-weighted mean of the windows that have it.

:data:`SERVEGEN_DEFAULTS` (used when a curve file is opened with ``load_trace``): the first 24 h,
compressed 24× into one hour, scaled to a mean of 5 rps (≈ 18,000 requests), Poisson, seed 0.

Curve files must have strictly increasing ``timestamp_s`` (windows are consecutive rows, so order
carries meaning and an out-of-order row is an error rather than something to sort away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from simulator.traces.arrivals import RateProfile, renewal_arrivals
from simulator.traces.assemble import trace_from_columns
from simulator.traces.errors import TraceFormatError
from simulator.traces.lengths import (
    DEFAULT_MAX_INPUT_TOKENS,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_SIGMA_INPUT,
    DEFAULT_SIGMA_OUTPUT,
    lognormal_tokens,
)
from simulator.traces.reading import CsvTable, float_column, read_csv_table, trace_stem
from simulator.workload import Trace

FloatArray = npt.NDArray[np.float64]

SERVEGEN_COLUMNS = ("timestamp_s", "total_rate_rps", "mean_input_tokens", "mean_output_tokens")
"""Required columns; ``active_clients`` and ``rate_share_with_length_data`` are optional."""

SERVEGEN_WINDOW_S = 600.0
"""Window length assumed for a single-row curve (the published files use 600 s)."""

DEFAULT_TARGET_MEAN_RPS = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class ServeGenCurves:
    """An aggregate load curve: per window its start, length, rate, mean lengths (NaN: no data)."""

    name: str
    source: str
    start_s: FloatArray
    window_s: FloatArray
    rate_rps: FloatArray
    mean_input_tokens: FloatArray
    mean_output_tokens: FloatArray

    @property
    def end_s(self) -> float:
        return float(self.start_s[-1] + self.window_s[-1])

    def profile(self) -> RateProfile:
        """The whole curve as a piecewise-constant rate on its own time axis."""
        edges = np.concatenate((self.start_s, [self.end_s]))
        return RateProfile(edges, self.rate_rps)


@dataclass(frozen=True, slots=True)
class ServeGenParams:
    """How to turn a curve into requests. Set at most one of ``scale``, ``target_mean_rps``,
    ``target_peak_rps``; when none is set the mean rate becomes ``DEFAULT_TARGET_MEAN_RPS``.

    Attributes:
        scale: multiplier on the published rates (1.0 = as published).
        target_mean_rps: time-weighted mean rate of the selection, requests/s.
        target_peak_rps: rate of the busiest selected window, requests/s.
        start_s: start of the selection in the curve's time, s.
        duration_s: length of the selection in the curve's time, s; ``None`` = to the end.
        time_compression: ``k``; windows last ``1/k`` of their real length, rates are unchanged.
        cv: coefficient of variation of inter-arrival gaps (1 = Poisson).
        sigma_input: lognormal σ of prompt lengths around each window's mean.
        sigma_output: lognormal σ of output lengths around each window's mean.
        max_input_tokens: clip for prompt lengths, tokens.
        max_output_tokens: clip for output lengths, tokens.
        seed: seed of ``numpy.random.default_rng`` (overridden by an explicit ``rng``).
    """

    scale: float | None = None
    target_mean_rps: float | None = None
    target_peak_rps: float | None = None
    start_s: float = 0.0
    duration_s: float | None = 86_400.0
    time_compression: float = 24.0
    cv: float = 1.0
    sigma_input: float = DEFAULT_SIGMA_INPUT
    sigma_output: float = DEFAULT_SIGMA_OUTPUT
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    seed: int = 0

    def __post_init__(self) -> None:
        chosen = [
            v for v in (self.scale, self.target_mean_rps, self.target_peak_rps) if v is not None
        ]
        if len(chosen) > 1:
            raise ValueError("set at most one of scale, target_mean_rps, target_peak_rps")
        if any(not (math.isfinite(v) and v >= 0) for v in chosen):
            raise ValueError("the rate scale or target must be finite and non-negative")
        if not (math.isfinite(self.time_compression) and self.time_compression > 0):
            raise ValueError("time_compression must be positive")
        if self.start_s < 0 or (self.duration_s is not None and self.duration_s <= 0):
            raise ValueError("start_s must be >= 0 and duration_s > 0")
        if self.cv < 0 or self.sigma_input < 0 or self.sigma_output < 0:
            raise ValueError("cv and sigmas must be non-negative")
        if self.max_input_tokens < 1 or self.max_output_tokens < 1:
            raise ValueError("max token counts must be at least 1")


SERVEGEN_DEFAULTS = ServeGenParams()
"""First 24 h, compressed 24× into 1 h, mean 5 rps, Poisson, σ 0.8/0.7, seed 0."""


def load_servegen_curves(path: str | Path, *, name: str | None = None) -> ServeGenCurves:
    """Read a ServeGen aggregate CSV (plain or gzip), checking order, signs and numbers."""
    path = Path(path)
    return servegen_curves_from_table(read_csv_table(path), name=name)


def servegen_curves_from_table(table: CsvTable, *, name: str | None = None) -> ServeGenCurves:
    """Build curves from an already read CSV table (used by format detection)."""
    table.require(*SERVEGEN_COLUMNS)
    starts = float_column(table, "timestamp_s", minimum=0.0)
    steps = np.diff(starts)
    if np.any(steps <= 0):
        row = int(np.argmax(steps <= 0)) + 1
        table.fail(
            row,
            "timestamps must be strictly increasing (one row per consecutive window)",
            "timestamp_s",
            table.text("timestamp_s").iloc[row],
        )
    rates = float_column(table, "total_rate_rps", minimum=0.0)
    mean_in = float_column(table, "mean_input_tokens", minimum=0.0, allow_empty=True)
    mean_out = float_column(table, "mean_output_tokens", minimum=0.0, allow_empty=True)
    no_lengths = np.isnan(mean_in) | np.isnan(mean_out)
    if np.all(rates <= 0):
        raise TraceFormatError(table.path, "every window has rate 0: the trace is empty", line=2)
    if np.all(no_lengths | (rates <= 0)):
        raise TraceFormatError(table.path, "no window with a positive rate has length data", line=2)
    last = steps[-1] if steps.size else SERVEGEN_WINDOW_S
    windows = np.append(steps, last)
    return ServeGenCurves(
        name=name or trace_stem(table.path),
        source=str(table.path),
        start_s=starts,
        window_s=windows,
        rate_rps=rates,
        mean_input_tokens=np.where(no_lengths, np.nan, mean_in),
        mean_output_tokens=np.where(no_lengths, np.nan, mean_out),
    )


def generate_servegen_trace(
    curves: ServeGenCurves | str | Path,
    params: ServeGenParams = SERVEGEN_DEFAULTS,
    *,
    rng: np.random.Generator | None = None,
    name: str | None = None,
) -> Trace:
    """Draw requests following a ServeGen curve (steps 1–5 of the module docstring)."""
    if not isinstance(curves, ServeGenCurves):
        curves = load_servegen_curves(curves)
    selection, mean_in, mean_out = _select(curves, params)
    profile = selection.scaled(_scale_factor(selection, params))
    generator = rng if rng is not None else np.random.default_rng(params.seed)
    arrivals = renewal_arrivals(profile, generator, cv=params.cv)
    window = profile.window_index(arrivals)
    inputs = lognormal_tokens(
        generator, mean_in[window], params.sigma_input, params.max_input_tokens
    )
    outputs = lognormal_tokens(
        generator, mean_out[window], params.sigma_output, params.max_output_tokens
    )
    meta = {
        "format": "servegen-aggregate",
        "curve": curves.name,
        "start_s": f"{params.start_s:g}",
        "duration_s": f"{selection.duration_s * params.time_compression:g}",
        "time_compression": f"{params.time_compression:g}",
        "mean_rps": f"{profile.mean_rps:.6g}",
        "peak_rps": f"{profile.peak_rps:.6g}",
        "rate_scale": f"{_scale_factor(selection, params):.6g}",
        "cv": f"{params.cv:g}",
        "sigma_input": f"{params.sigma_input:g}",
        "sigma_output": f"{params.sigma_output:g}",
        "seed": str(params.seed) if rng is None else "generator",
    }
    return trace_from_columns(
        name or curves.name,
        arrivals,
        inputs,
        outputs,
        source=curves.source,
        meta=meta,
        rebase=False,
    )


def _select(
    curves: ServeGenCurves, params: ServeGenParams
) -> tuple[RateProfile, FloatArray, FloatArray]:
    """The selected, time-compressed (unscaled) profile and each window's mean lengths."""
    begin = params.start_s
    end = curves.end_s if params.duration_s is None else begin + params.duration_s
    end = min(end, curves.end_s)
    if begin < curves.start_s[0] or begin >= end:
        raise ValueError(
            f"selection [{begin:g}, {end:g}) s is outside the curve "
            f"[{curves.start_s[0]:g}, {curves.end_s:g}) s"
        )
    window_end = curves.start_s + curves.window_s
    keep = (window_end > begin) & (curves.start_s < end)
    starts = np.maximum(curves.start_s[keep], begin)
    ends = np.minimum(window_end[keep], end)
    edges = (np.append(starts, ends[-1]) - begin) / params.time_compression
    rates = curves.rate_rps[keep]
    mean_in = _fill_missing(curves.mean_input_tokens, curves.rate_rps)[keep]
    mean_out = _fill_missing(curves.mean_output_tokens, curves.rate_rps)[keep]
    return RateProfile(edges, rates), mean_in, mean_out


def _fill_missing(means: FloatArray, rates: FloatArray) -> FloatArray:
    """Windows without data get the rate-weighted mean of the windows with data."""
    known = ~np.isnan(means)
    weights = rates[known]
    fallback = (
        float(np.average(means[known], weights=weights))
        if weights.sum() > 0
        else float(np.mean(means[known]))
    )
    return np.where(known, means, fallback)


def _scale_factor(selection: RateProfile, params: ServeGenParams) -> float:
    """Multiplier on the published rates; e.g. target mean 5 rps on a 200 rps mean → 0.025."""
    if params.scale is not None:
        return params.scale
    if params.target_peak_rps is not None:
        return _ratio(params.target_peak_rps, selection.peak_rps)
    target = DEFAULT_TARGET_MEAN_RPS if params.target_mean_rps is None else params.target_mean_rps
    return _ratio(target, selection.mean_rps)


def _ratio(target: float, current: float) -> float:
    if current <= 0:
        raise ValueError("the selected part of the curve has rate 0 everywhere; cannot scale it")
    return target / current
