"""Synthetic traces: constant, bursty, diurnal and step load with controlled lengths and prefixes.

Why it exists: real traces answer "what happens on real traffic"; synthetic ones answer "what
happens when exactly this changes" — a rate step to test scale-up latency, a day/night sinusoid to
test scale-down and scale-to-zero, bursts of a known CV to test headroom, shared system prompts to
test prefix-aware routing, a sheddable share to test admission control. Every generator is
reproducible from ``seed`` (an ``int`` or a ``numpy.random.Generator``).

All generators share the same request options:

* ``lengths`` — a :class:`~simulator.traces.lengths.LengthSampler` (fixed, lognormal, or resampled
  from a real trace); default lognormal with means 1024 in / 256 out.
* ``prefix`` — a :class:`SharedPrefix`: a share of requests starts with one of ``groups`` common
  prefixes of ``tokens`` tokens (think system prompts). The prefix is *added* to the sampled length,
  which is the request's own part. Example: ``SharedPrefix(groups=4, tokens=128)`` with
  ``FixedLengths(64, 64)`` gives 192-token prompts whose first 128 tokens are one of 4 prompts.
* ``sheddable_fraction`` — each request independently gets priority −1 (sheddable) with this
  probability, else 0.
* ``model`` — the model name put on every request.

Arrivals are drawn first, then lengths, prefix groups and priorities, all from the one generator, so
a seed fixes the whole trace. Times start at the profile's 0 s (a stage of a step trace begins where
its predecessors end); generated traces are not re-based to their first arrival.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.traces.arrivals import RateProfile, renewal_arrivals
from simulator.traces.assemble import trace_from_columns
from simulator.traces.lengths import LengthSampler, LogNormalLengths
from simulator.workload import Trace

Seed = int | np.random.Generator

DEFAULT_LENGTHS = LogNormalLengths(mean_input_tokens=1024, mean_output_tokens=256)


@dataclass(frozen=True, slots=True)
class SharedPrefix:
    """``fraction`` of requests start with one of ``groups`` shared prefixes of ``tokens`` tokens.

    Groups are chosen uniformly; group ``g`` has prefix id ``first_id + g`` (one unit of ``tokens``
    tokens in :class:`~simulator.workload.RequestSpec` terms).
    """

    groups: int
    tokens: int
    fraction: float = 1.0
    first_id: int = 0

    def __post_init__(self) -> None:
        if self.groups < 1 or self.tokens < 1:
            raise ValueError("a shared prefix needs at least one group of at least one token")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be in [0, 1]")


def poisson_trace(
    rate_rps: float,
    duration_s: float,
    *,
    lengths: LengthSampler = DEFAULT_LENGTHS,
    prefix: SharedPrefix | None = None,
    sheddable_fraction: float = 0.0,
    model: str | None = None,
    seed: Seed = 0,
    name: str | None = None,
) -> Trace:
    """Poisson arrivals at a constant ``rate_rps`` for ``duration_s`` (exponential gaps, CV 1)."""
    return profile_trace(
        RateProfile.constant(rate_rps, duration_s),
        cv=1.0,
        lengths=lengths,
        prefix=prefix,
        sheddable_fraction=sheddable_fraction,
        model=model,
        seed=seed,
        name=name or f"poisson-{rate_rps:g}rps",
        meta={"generator": "poisson", "rate_rps": f"{rate_rps:g}", "duration_s": f"{duration_s:g}"},
    )


def gamma_trace(
    rate_rps: float,
    cv: float,
    duration_s: float,
    *,
    lengths: LengthSampler = DEFAULT_LENGTHS,
    prefix: SharedPrefix | None = None,
    sheddable_fraction: float = 0.0,
    model: str | None = None,
    seed: Seed = 0,
    name: str | None = None,
) -> Trace:
    """Bursty arrivals: gamma gaps with mean ``1/rate_rps`` and coefficient of variation ``cv``.

    ``shape = 1/cv²``, ``scale = cv²/rate``; e.g. 10 rps at CV 2 → shape 0.25, scale 0.4 s.
    """
    return profile_trace(
        RateProfile.constant(rate_rps, duration_s),
        cv=cv,
        lengths=lengths,
        prefix=prefix,
        sheddable_fraction=sheddable_fraction,
        model=model,
        seed=seed,
        name=name or f"gamma-{rate_rps:g}rps-cv{cv:g}",
        meta={
            "generator": "gamma",
            "rate_rps": f"{rate_rps:g}",
            "cv": f"{cv:g}",
            "duration_s": f"{duration_s:g}",
        },
    )


def diurnal_trace(
    min_rps: float,
    max_rps: float,
    period_s: float,
    duration_s: float,
    *,
    phase_s: float = 0.0,
    cv: float = 1.0,
    lengths: LengthSampler = DEFAULT_LENGTHS,
    prefix: SharedPrefix | None = None,
    sheddable_fraction: float = 0.0,
    model: str | None = None,
    seed: Seed = 0,
    name: str | None = None,
) -> Trace:
    """A day/night cycle: ``rate(t) = min + (max − min)·(1 − cos(2π(t + phase)/period))/2``.

    With ``phase_s = 0`` the rate starts at its trough and peaks at ``period_s / 2``. Example:
    ``diurnal_trace(2, 10, 3600, 7200)`` has mean 6 rps and ≈ 43,200 requests over two cycles.
    """
    profile = RateProfile.sinusoid(min_rps, max_rps, period_s, duration_s, phase_s=phase_s)
    return profile_trace(
        profile,
        cv=cv,
        lengths=lengths,
        prefix=prefix,
        sheddable_fraction=sheddable_fraction,
        model=model,
        seed=seed,
        name=name or f"diurnal-{min_rps:g}-{max_rps:g}rps",
        meta={
            "generator": "diurnal",
            "min_rps": f"{min_rps:g}",
            "max_rps": f"{max_rps:g}",
            "period_s": f"{period_s:g}",
            "phase_s": f"{phase_s:g}",
            "cv": f"{cv:g}",
            "duration_s": f"{duration_s:g}",
        },
    )


def step_trace(
    stages: Sequence[tuple[float, float]],
    *,
    cv: float = 1.0,
    lengths: LengthSampler = DEFAULT_LENGTHS,
    prefix: SharedPrefix | None = None,
    sheddable_fraction: float = 0.0,
    model: str | None = None,
    seed: Seed = 0,
    name: str | None = None,
) -> Trace:
    """Consecutive ``(duration_s, rate_rps)`` stages, e.g. ``[(300, 5), (300, 20), (300, 5)]``."""
    return profile_trace(
        RateProfile.steps(stages),
        cv=cv,
        lengths=lengths,
        prefix=prefix,
        sheddable_fraction=sheddable_fraction,
        model=model,
        seed=seed,
        name=name or "step",
        meta={
            "generator": "step",
            "stages": ";".join(f"{d:g}s@{r:g}rps" for d, r in stages),
            "cv": f"{cv:g}",
        },
    )


def profile_trace(
    profile: RateProfile,
    *,
    cv: float = 1.0,
    lengths: LengthSampler = DEFAULT_LENGTHS,
    prefix: SharedPrefix | None = None,
    sheddable_fraction: float = 0.0,
    model: str | None = None,
    seed: Seed = 0,
    name: str = "synthetic",
    meta: dict[str, str] | None = None,
) -> Trace:
    """A trace following any :class:`RateProfile` (the building block of the generators above)."""
    if not 0.0 <= sheddable_fraction <= 1.0:
        raise ValueError("sheddable_fraction must be in [0, 1]")
    rng = np.random.default_rng(seed)
    arrivals = renewal_arrivals(profile, rng, cv=cv)
    n = arrivals.size
    inputs, outputs = lengths.sample(rng, n)
    prefix_ids: list[tuple[int, ...]] | None = None
    units: np.ndarray | None = None
    if prefix is not None:
        has_prefix = rng.random(n) < prefix.fraction
        group = rng.integers(0, prefix.groups, size=n)
        inputs = inputs + np.where(has_prefix, prefix.tokens, 0)
        prefix_ids = [
            (prefix.first_id + g,) if shared else ()
            for g, shared in zip(group.tolist(), has_prefix.tolist(), strict=True)
        ]
        units = np.where(has_prefix, prefix.tokens, 0)
    priority = np.where(rng.random(n) < sheddable_fraction, -1, 0)
    info = dict(meta or {})
    info.update(
        {
            "lengths": lengths.describe(),
            "seed": str(seed) if isinstance(seed, int) else "generator",
            "sheddable_fraction": f"{sheddable_fraction:g}",
        }
    )
    if prefix is not None:
        info["prefix"] = (
            f"groups={prefix.groups}, tokens={prefix.tokens}, fraction={prefix.fraction:g}"
        )
    return trace_from_columns(
        name,
        arrivals,
        inputs,
        outputs,
        priority=priority,
        model=None if model is None else [model] * n,
        prefix_ids=prefix_ids,
        prefix_unit_tokens=units,
        source="synthetic",
        meta=info,
        rebase=False,
    )
