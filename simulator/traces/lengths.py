"""Prompt and output length distributions for generated traces.

Why it exists: the load a request puts on a server is set by its token counts far more than by its
arrival, so synthetic traffic needs realistic lengths: fixed (for controlled experiments), lognormal
around a mean (heavy right tail, like real prompts), or resampled from a real trace.

**Lognormal around a mean.** For a target mean ``m`` and log-space spread ``σ``::

    μ = ln(m) − σ²/2     so that  E[exp(μ + σZ)] = m,   median = exp(μ),   CV = √(exp(σ²) − 1)

Example: ``m = 355, σ = 1`` → ``μ = 5.872 − 0.5 = 5.372``, median ≈ 215 tokens, mean 355. Draws are
rounded to integers and clipped to ``[1, max_tokens]``; clipping lowers the mean slightly when
``max_tokens`` is within a few medians·exp(2σ).

Default spreads come from the Azure 2023 conversation trace (CC-BY-4.0): its prompt lengths have
CV 0.96 → ``σ = √ln(1 + 0.96²) ≈ 0.81`` and its output lengths CV 0.77 → ``σ ≈ 0.68``; hence
``sigma_input = 0.8`` and ``sigma_output = 0.7``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simulator.traces.assemble import trace_columns
from simulator.workload import Trace

IntArray = npt.NDArray[np.int64]

DEFAULT_SIGMA_INPUT = 0.8
DEFAULT_SIGMA_OUTPUT = 0.7
DEFAULT_MAX_INPUT_TOKENS = 32_768
DEFAULT_MAX_OUTPUT_TOKENS = 8_192


class LengthSampler(Protocol):
    """Draws ``n`` (input_tokens, output_tokens) pairs, each ``>= 1``."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]: ...

    def describe(self) -> str:
        """A short text for a trace's ``meta`` (what lengths it was generated with)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedLengths:
    """Every request has the same prompt and output length."""

    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError("token counts must be at least 1")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        return (
            np.full(n, self.input_tokens, dtype=np.int64),
            np.full(n, self.output_tokens, dtype=np.int64),
        )

    def describe(self) -> str:
        return f"fixed(input={self.input_tokens}, output={self.output_tokens})"


@dataclass(frozen=True, slots=True)
class LogNormalLengths:
    """Independent lognormal prompt and output lengths with the given means (see module doc)."""

    mean_input_tokens: float
    mean_output_tokens: float
    sigma_input: float = DEFAULT_SIGMA_INPUT
    sigma_output: float = DEFAULT_SIGMA_OUTPUT
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS

    def __post_init__(self) -> None:
        if self.mean_input_tokens < 1 or self.mean_output_tokens < 1:
            raise ValueError("mean token counts must be at least 1")
        if self.sigma_input < 0 or self.sigma_output < 0:
            raise ValueError("sigma must be non-negative")
        if self.max_input_tokens < 1 or self.max_output_tokens < 1:
            raise ValueError("max token counts must be at least 1")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        inputs = lognormal_tokens(
            rng, np.full(n, self.mean_input_tokens), self.sigma_input, self.max_input_tokens
        )
        outputs = lognormal_tokens(
            rng, np.full(n, self.mean_output_tokens), self.sigma_output, self.max_output_tokens
        )
        return inputs, outputs

    def describe(self) -> str:
        return (
            f"lognormal(mean_input={self.mean_input_tokens:g}, sigma_input={self.sigma_input:g}, "
            f"mean_output={self.mean_output_tokens:g}, sigma_output={self.sigma_output:g})"
        )


@dataclass(frozen=True, slots=True)
class EmpiricalLengths:
    """(input, output) pairs resampled with replacement from a real trace, keeping their pairing.

    Example: ``EmpiricalLengths.from_trace(load_bundled("azure-code-2023"))`` gives synthetic
    arrivals with the coding service's long prompts and short answers.
    """

    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    origin: str = ""

    def __post_init__(self) -> None:
        if not self.input_tokens or len(self.input_tokens) != len(self.output_tokens):
            raise ValueError("need equally many (at least one) input and output lengths")

    @classmethod
    def from_trace(cls, trace: Trace) -> EmpiricalLengths:
        _, inputs, outputs = trace_columns(trace)
        return cls(tuple(inputs.tolist()), tuple(outputs.tolist()), trace.name)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        index = rng.integers(0, len(self.input_tokens), size=n)
        inputs = np.asarray(self.input_tokens, dtype=np.int64)[index]
        outputs = np.asarray(self.output_tokens, dtype=np.int64)[index]
        return inputs, outputs

    def describe(self) -> str:
        return f"empirical({self.origin or 'unnamed'}, n={len(self.input_tokens)})"


def lognormal_mu(mean_tokens: npt.ArrayLike, sigma: float) -> npt.NDArray[np.float64]:
    """``μ = ln(m) − σ²/2`` (log-space location giving mean ``m``); e.g. ``(355, 1) → 5.372``."""
    return np.asarray(np.log(np.asarray(mean_tokens, dtype=np.float64)) - sigma**2 / 2.0)


def lognormal_tokens(
    rng: np.random.Generator,
    mean_tokens: npt.ArrayLike,
    sigma: float,
    max_tokens: int,
) -> IntArray:
    """One lognormal integer length per entry of ``mean_tokens`` (means ``< 1`` count as 1)."""
    means = np.maximum(np.asarray(mean_tokens, dtype=np.float64), 1.0)
    mu = lognormal_mu(means, sigma)
    draws = np.exp(mu + sigma * rng.standard_normal(means.shape))
    return np.clip(np.rint(draws), 1, max_tokens).astype(np.int64)


def sigma_for_cv(cv: float) -> float:
    """Lognormal ``σ`` whose CV is ``cv``: ``√ln(1 + CV²)``; e.g. ``0.96 → 0.81``."""
    return math.sqrt(math.log1p(cv * cv))
