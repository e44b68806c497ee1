"""Turn a scenario's ``trace:`` section into a :class:`~simulator.workload.Trace`.

Three sources: a bundled trace by name, a file (any format ``load_trace`` detects), or a generator
with its parameters. Generator parameters mirror the Python functions in ``simulator.traces``:

.. code-block:: yaml

    trace:
      generate: {kind: gamma, rate_rps: 8, cv: 2, duration_s: 3600,
                 lengths: {mean_input_tokens: 1024, mean_output_tokens: 256},
                 prefix: {groups: 4, tokens: 512, fraction: 0.8}, sheddable_fraction: 0.2}

``kind`` is one of ``poisson``, ``gamma``, ``diurnal``, ``step`` (``stages: [[seconds, rps], …]``)
or ``servegen`` (``curve`` = a bundled ServeGen name, plus any ``ServeGenParams`` field). An
unknown or missing parameter is reported with the field path, e.g. ``trace.generate.rate_rps``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.traces import bundled_trace, load_trace
from simulator.traces.lengths import FixedLengths, LengthSampler, LogNormalLengths
from simulator.traces.servegen import ServeGenParams, generate_servegen_trace
from simulator.traces.synthetic import (
    SharedPrefix,
    diurnal_trace,
    gamma_trace,
    poisson_trace,
    step_trace,
)
from simulator.workload import Trace

_GENERATORS: dict[str, Callable[..., Trace]] = {
    "poisson": poisson_trace,
    "gamma": gamma_trace,
    "diurnal": diurnal_trace,
    "step": step_trace,
}


class TraceSpecError(ValueError):
    """A ``trace:`` section that cannot be turned into requests (message names the field)."""


def _lengths(spec: dict[str, Any]) -> LengthSampler:
    if spec.get("fixed"):
        return FixedLengths(int(spec["mean_input_tokens"]), int(spec["mean_output_tokens"]))
    args = {k: v for k, v in spec.items() if k != "fixed"}
    return LogNormalLengths(**args)


def _generate(params: dict[str, Any], seed: int) -> Trace:
    params = dict(params)
    kind = params.pop("kind", None)
    if kind == "servegen":
        curve = params.pop("curve", "servegen-m-large")
        try:
            sg = ServeGenParams(**{"seed": seed, **params})
        except TypeError as e:
            raise TraceSpecError(f"trace.generate: {e}") from None
        return generate_servegen_trace(bundled_trace(curve), sg)
    if kind not in _GENERATORS:
        raise TraceSpecError(
            f"trace.generate.kind: unknown generator {kind!r}; choose one of "
            f"{', '.join([*_GENERATORS, 'servegen'])}"
        )
    fn = _GENERATORS[kind]
    if "lengths" in params:
        params["lengths"] = _lengths(params["lengths"])
    if "prefix" in params:
        params["prefix"] = SharedPrefix(**params["prefix"])
    if kind == "step" and "stages" in params:
        params["stages"] = [tuple(s) for s in params["stages"]]
    accepted = inspect.signature(fn).parameters
    for key in params:
        if key not in accepted:
            raise TraceSpecError(
                f"trace.generate.{key}: not a parameter of the {kind} generator "
                f"(accepted: {', '.join(k for k in accepted if k != 'seed')})"
            )
    missing = [
        k for k, p in accepted.items() if p.default is inspect.Parameter.empty and k not in params
    ]
    if missing:
        raise TraceSpecError(f"trace.generate.{missing[0]}: required by the {kind} generator")
    return fn(**params, seed=seed)


def trace_for_scenario(spec: Any, *, seed: int, base_dir: Path) -> Trace:
    """Build the trace a scenario's ``trace:`` section describes, cut to its window."""
    try:
        if spec.bundled is not None:
            trace = load_trace(bundled_trace(spec.bundled))
        elif spec.path is not None:
            path = Path(spec.path)
            trace = load_trace(path if path.is_absolute() else base_dir / path)
        else:
            trace = _generate(spec.generate, seed)
    except (KeyError, TypeError) as e:
        raise TraceSpecError(f"trace: {e}") from None
    if spec.start_s or spec.duration_s:
        end = spec.start_s + spec.duration_s if spec.duration_s else float("inf")
        trace = trace.window(spec.start_s, end)
    return trace
