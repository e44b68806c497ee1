"""Least-squares fits of the step-time coefficients to the measurements.

Each fit keeps the terms that a dedicated measurement pins down fixed, and fits the rest:

* **linear-layer roofline** (Vidur per-operator times): per layer ``max(floor, tokens·rate)``;
  the rate (compute-bound seconds per token) is kept as measured, the floor only initialises.
* **tensor-parallel all-reduce** (Vidur NCCL times): ``t(size) = latency + size/bandwidth``;
  a step does 2 all-reduces per layer of ``tokens·hidden·2`` bytes, so
  ``tp_fixed = 2·layers·latency`` and ``tp_token = 2·layers·hidden·2 / bandwidth``.
  Example, Llama-2-70B on 4 H100 (latency 30.6 µs, 253 GB/s): ``tp_fixed = 160·30.6 µs =
  4.9`` ms and ``tp_token = 160·16,384 B / 253 GB/s = 10.4`` µs.
* **Splitwise** (Llama-2-70B, A100/H100, TP 2/4/8): the remaining coefficients by a robust
  (soft-L1) least-squares fit of relative errors over every configuration's prefill and decode
  step, with both terms above fixed.
* **inference-perf** (Llama-3-8B on one H100, vLLM 0.11): a rate sweep measures the step a
  request sees, not single steps, so the fit goes through a small steady-state model of the
  continuously batched server (:func:`sweep_step_time`) and matches every stage of both variants
  (plain, and prefix caching that skips the 128-token shared system prompt).
* **Argonne** (vLLM of 2024, whole-batch latency of ``batch`` prompts of ``n`` tokens each
  generating ``n``): the decode terms — per-step constant, per sequence, per context token — with
  the prefill terms fixed (:func:`fit_argonne`). A batch's latency is its prefill plus ``n − 1``
  decode steps; the prefill's per-token cost and the decode's per-sequence cost both grow as
  ``batch·n``, so these runs cannot tell them apart and the prefill comes from elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from simulator.perf.measurements import (
    ArgonneRun,
    CollectiveSample,
    LinearLayerSample,
    SplitwiseRun,
    SweepStage,
)
from simulator.perf.model import StepTimeModel, prefill_attn_pairs


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Median absolute percentage error (a fraction): ``median(|p − m| / m)``."""
    errors = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return float(np.median(errors)) if errors else math.nan


@dataclass(frozen=True, slots=True)
class Roofline:
    """A model's linear layers on one GPU: ``max(floor_s, tokens·token_s)`` for all its layers."""

    floor_s: float
    token_s: float
    mape: float


def fit_roofline(samples: Sequence[LinearLayerSample], layers: int) -> Roofline:
    """Fit ``max(floor, n·rate)`` to one layer's times (relative error), times ``layers``."""
    n = np.array([s.tokens for s in samples], dtype=float)
    y = np.array([s.seconds for s in samples])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.asarray((np.maximum(x[0], n * x[1]) - y) / y)

    x0 = [float(y[0]), float(y[-1] / n[-1])]
    fit = least_squares(residuals, x0, bounds=([0.0, 0.0], [np.inf, np.inf]), x_scale=x0)
    floor, rate = (float(v) for v in fit.x)
    return Roofline(floor * layers, rate * layers, float(np.median(np.abs(fit.fun))))


@dataclass(frozen=True, slots=True)
class Collective:
    """``t(size) = latency_s + size / bandwidth_bytes_s`` for one collective and worker count."""

    latency_s: float
    bandwidth_bytes_s: float


def fit_collective(samples: Sequence[CollectiveSample], workers: int) -> Collective:
    """Relative least squares of ``latency + size/bandwidth`` over every measured size."""
    rows = [s for s in samples if s.workers == workers]
    if not rows:
        raise ValueError(f"no measurements for {workers} workers")
    size = np.array([s.size_bytes for s in rows], dtype=float)
    t = np.array([s.seconds for s in rows])
    design = np.c_[np.ones_like(size), size] / t[:, None]
    (latency, per_byte), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    return Collective(float(latency), float(1.0 / per_byte))


def tp_terms(layers: int, hidden: int, all_reduce: Collective | None) -> tuple[float, float]:
    """``(tp_fixed_s, tp_token_s)``: 2 all-reduces of ``tokens·hidden`` bf16 values per layer."""
    if all_reduce is None:
        return 0.0, 0.0
    return (
        2 * layers * all_reduce.latency_s,
        2 * layers * hidden * 2 / all_reduce.bandwidth_bytes_s,
    )


@dataclass(frozen=True, slots=True)
class SplitwiseFit:
    step: StepTimeModel
    prefill_mape: float
    decode_mape: float
    runs: int
    excluded: int
    """Configurations whose KV footprint exceeds the deployment's KV capacity (not fitted)."""


def _splitwise_features(runs: Sequence[SplitwiseRun]) -> tuple[np.ndarray, np.ndarray]:
    rows = [r.prefill_features for r in runs] + [r.decode_features for r in runs]
    y = np.array([r.prefill_s for r in runs] + [r.decode_s for r in runs])
    return np.array(rows, dtype=float), y


def _predict(x: np.ndarray, f: float, tp: tuple[float, float], feats: np.ndarray) -> np.ndarray:
    c0, pstep, p, a, d, k, floor = x
    pt, at, dt, kt = feats.T
    tokens = pt + dt
    return np.asarray(
        c0
        + np.maximum(floor, tokens * f)
        + pt * p
        + at * a
        + dt * d
        + kt * k
        + tp[0]
        + tp[1] * tokens
        + pstep * (pt > 0)
    )


def fit_splitwise(
    runs: Sequence[SplitwiseRun],
    linear: Roofline,
    tp: tuple[float, float],
    capacity_tokens: int,
) -> SplitwiseFit:
    """Fit one (hardware, TP) of Splitwise; the roofline rate and the TP terms stay fixed.

    Runs whose ``batch·(prompt + tokens)`` exceeds ``capacity_tokens`` are excluded: vLLM cannot
    hold that batch, and the measured times (e.g. TP2, batch 64: 8× faster than batch 32) show
    the run did something else.
    """
    kept = [r for r in runs if r.batch * (r.prompt + r.tokens) <= capacity_tokens]
    feats, y = _splitwise_features(kept)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.asarray((_predict(x, linear.token_s, tp, feats) - y) / y)

    scale = np.array([1e-2, 1e-2, 1e-5, 1e-9, 1e-4, 1e-8, 1e-2])
    best = None
    for pstep0 in (0.0, 0.01, 0.02, 0.03):
        for c00 in (0.0, 0.01):
            x0 = np.array([c00, pstep0, 1e-5, 1e-9, 1e-4, 1e-8, linear.floor_s])
            fit = least_squares(
                residuals, x0, bounds=(0.0, np.inf), x_scale=scale, loss="soft_l1", f_scale=0.05
            )
            if best is None or fit.cost < best.cost:
                best = fit
    assert best is not None
    c0, pstep, p, a, d, k, floor = (float(v) for v in best.x)
    step = StepTimeModel(
        c0_s=c0,
        prefill_token_s=p,
        prefill_attn_s=a,
        decode_seq_s=d,
        kv_token_s=k,
        tp_fixed_s=tp[0],
        tp_token_s=tp[1],
        linear_floor_s=floor,
        linear_token_s=linear.token_s,
        prefill_step_s=pstep,
    )
    n = len(kept)
    rel = np.abs(best.fun)
    return SplitwiseFit(
        step, float(np.median(rel[:n])), float(np.median(rel[n:])), n, len(runs) - n
    )


# --- the continuously batched server, in steady state -------------------------------------------


def _poisson_mean(mu: float, f: Callable[[int], float]) -> float:
    """``E[f(J)]`` for ``J ~ Poisson(mu)`` (truncated far in the tail)."""
    top = math.ceil(mu + 6 * math.sqrt(mu) + 6)
    pj = math.exp(-mu)
    total = pj * f(0)
    for j in range(1, top + 1):
        pj *= mu / j
        total += pj * f(j)
    return total


def _step_at(step: StepTimeModel, p: float, a: float, d: float, k: float) -> float:
    """``step_time`` at fractional (mean-field) counts; keeps the fit's residuals smooth."""
    return step.step_time(p, a, d, k)  # type: ignore[arg-type]


def sweep_step_time(
    step: StepTimeModel,
    rate: float,
    prompt: float,
    output: float,
    cached: int = 0,
    max_num_seqs: int = 128,
) -> tuple[float, float]:
    """Mean step a request sees at ``rate`` req/s, and the decoding sequences per step.

    Steady state of a continuously batched server: a request decodes for ``output − 1`` steps of
    mean length ``τ``, so a tagged request shares each step with ``λ·(output − 1)·τ`` others
    (Little's law), capped at ``max_num_seqs``; the prompts that arrived during the previous step
    (Poisson, mean ``λ·τ``) prefill in this one, ``prompt − cached`` new tokens each. ``τ`` is the
    fixed point of ``τ = E[step_time]``. Once the cap binds the server is saturated: it admits
    ``max_num_seqs/(output − 1)`` prompts per step whatever the offered rate.
    """
    new = prompt - cached
    pairs = new * (cached + new / 2)
    ctx = prompt + output / 2
    tau = _step_at(step, 0, 0.0, 1, ctx)
    decode = 1.0
    for _ in range(80):
        decode = 1.0 + rate * (output - 1) * tau
        mu = rate * tau
        if decode >= max_num_seqs:
            decode = float(max_num_seqs)
            mu = max_num_seqs / (output - 1)
        d, k = decode, decode * ctx

        def at(j: int, d: float = d, k: float = k) -> float:
            return _step_at(step, j * new, j * pairs, d, k)

        tau = 0.5 * tau + 0.5 * _poisson_mean(mu, at)
    return tau, decode


def saturation_utilisation(
    step: StepTimeModel,
    rate: float,
    prompt: float,
    output: float,
    cached: int = 0,
    max_num_seqs: int = 128,
) -> float:
    """GPU-seconds per second that ``rate`` req/s needs when every step is as full as allowed.

    Each step decodes ``max_num_seqs`` sequences and prefills ``max_num_seqs/(output − 1)``
    prompts; ``rate·(output − 1)/max_num_seqs`` such steps per second serve the load. 1.0 is the
    server's capacity: Llama-3-8B on an H100 saturates at about 106 req/s of 204 + 62 tokens.
    """
    per_step = max_num_seqs / (output - 1)
    new = prompt - cached
    t = _step_at(
        step,
        per_step * new,
        per_step * new * (cached + new / 2),
        max_num_seqs,
        max_num_seqs * (prompt + output / 2),
    )
    return rate * (output - 1) / max_num_seqs * t


@dataclass(frozen=True, slots=True)
class SweepFit:
    step: StepTimeModel
    frontend_overhead_s: float
    stage_errors: tuple[tuple[str, int, float, float], ...]
    """(variant, stage, measured, modelled) step a request sees, seconds."""

    @property
    def mape(self) -> float:
        return mape([m for *_, m in self.stage_errors], [s for *_, s, _ in self.stage_errors])


PREFIX_VARIANT = "vllm+chunking_and_prefix_caching"
SHARED_PREFIX_TOKENS = 128
"""inference-perf's shared system prompt: 128 tokens, 8 whole 16-token blocks cached."""


def stage_cached_tokens(stage: SweepStage) -> int:
    return SHARED_PREFIX_TOKENS if stage.variant == PREFIX_VARIANT else 0


def fit_sweep(
    stages: Sequence[SweepStage],
    fixed: StepTimeModel,
    anchor: Roofline,
    max_num_seqs: int = 128,
) -> SweepFit:
    """Fit ``c0``, the linear roofline, the per-prefill-token and per-sequence costs to a sweep.

    ``fixed`` supplies the terms measured elsewhere (attention, KV read). ``anchor`` — Vidur's
    roofline of the same layers on the same GPU — starts the fit; the server measured here (vLLM
    0.11, CUDA graphs) is faster than Vidur's per-operator profile, and the data decide. The five
    free coefficients trade off along a ridge (``c0`` against the floor), so the fit starts from
    several points and keeps the best. The frontend overhead is then what the measured TTFT p50
    leaves after the engine's part (:func:`frontend_overhead`).
    """

    def with_x(x: np.ndarray) -> StepTimeModel:
        c0, floor, p, d, rate = (float(v) for v in x)
        return replace(
            fixed,
            c0_s=c0,
            linear_floor_s=floor,
            prefill_token_s=p,
            decode_seq_s=d,
            linear_token_s=rate,
        )

    def steps(model: StepTimeModel) -> list[float]:
        return [
            sweep_step_time(
                model,
                s.achieved_rps,
                s.prompt_tokens,
                s.output_tokens,
                stage_cached_tokens(s),
                max_num_seqs,
            )[0]
            for s in stages
        ]

    measured = np.array([s.decode_step_s for s in stages])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.asarray((np.array(steps(with_x(x))) - measured) / measured)

    scale = [1e-3, 1e-3, 1e-5, 1e-5, 1e-5]
    best = None
    for c00, share in ((0.0, 1.0), (1e-3, 0.8), (2e-3, 0.6)):
        x0 = np.array([c00, anchor.floor_s * share, 1e-5, 1e-5, anchor.token_s])
        fit = least_squares(residuals, x0, bounds=(0.0, np.inf), x_scale=scale)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    step = with_x(best.x)
    errors = tuple(
        (s.variant, s.stage, s.decode_step_s, tau)
        for s, tau in zip(stages, steps(step), strict=True)
    )
    return SweepFit(step, frontend_overhead(step, stages, max_num_seqs), errors)


def sweep_engine_ttft(
    step: StepTimeModel,
    rate: float,
    prompt: float,
    output: float,
    latency: float,
    cached: int = 0,
    max_num_seqs: int = 128,
) -> float:
    """Engine part of the time to first token in the steady state of :func:`sweep_step_time`.

    A request arriving while a step runs waits for it to end (the engine is busy with
    probability ``1 − exp(−λ·latency)``; a Poisson arrival lands in a step with probability in
    proportion to its length, so the mean residual is ``E[t²]/(2·E[t])``), then prefills in the
    next step alongside the prompts that arrived with it and the decoding sequences.
    """
    tau, decode = sweep_step_time(step, rate, prompt, output, cached, max_num_seqs)
    new = prompt - cached
    pairs = new * (cached + new / 2)
    mu = min(rate * tau, max_num_seqs / (output - 1))
    others = min(rate * (output - 1) * tau, float(max_num_seqs))
    ctx = others * (prompt + output / 2)

    def length(j: int) -> float:
        return _step_at(step, j * new, j * pairs, decode, decode * (prompt + output / 2))

    mean = _poisson_mean(mu, length)
    square = _poisson_mean(mu, lambda j: length(j) ** 2)
    busy = 1.0 - math.exp(-rate * latency)
    own = _poisson_mean(mu, lambda j: _step_at(step, (j + 1) * new, (j + 1) * pairs, others, ctx))
    return busy * square / (2 * mean) + own


def frontend_overhead(
    step: StepTimeModel, stages: Sequence[SweepStage], max_num_seqs: int = 128
) -> float:
    """API-server overhead: median over the unsaturated stages of TTFT p50 − engine TTFT.

    The engine part is :func:`sweep_engine_ttft`. Example, stage 1 of the plain variant
    (31.4 req/s): 29.3 ms measured − 17.1 ms (wait for the running step + own prefill step) =
    12.2 ms. The 1 req/s stages leave about 19 ms: an idle engine also pays a wake-up that
    loaded stages do not; the median over the unsaturated stages is 14.5 ms.
    """
    implied = [
        s.ttft_p50_s
        - sweep_engine_ttft(
            step,
            s.achieved_rps,
            s.prompt_tokens,
            s.output_tokens,
            s.latency_p50_s,
            stage_cached_tokens(s),
            max_num_seqs,
        )
        for s in stages
        if not s.saturated
    ]
    return float(np.median(implied))


# --- Argonne: whole-batch latency, input length = output length ----------------------------------

PREFILL_BUDGET_TOKENS = 8192
"""Prompt tokens per prefill step: vLLM's ``max_num_batched_tokens`` without chunked prefill is
the model's context length (8,192 for Llama-3), whole prompts only."""


def batch_latency(step: StepTimeModel, length: int, batch: int) -> float:
    """``batch`` prompts of ``length`` tokens, each generating ``length`` tokens, all at once.

    vLLM prefills every prompt first (whole prompts, up to :data:`PREFILL_BUDGET_TOKENS` per step;
    the prefill produces each sequence's first token), then runs ``length − 1`` decode steps of the
    whole batch, the contexts growing from ``length + 1`` to ``2·length − 1``::

        latency = Σ prefill steps + (length − 1)·alpha(batch) + beta·batch·Σ_j (length + j)

    Example, H100 TP4 Llama-3-70B, 1 prompt of 128: one 128-token prefill (29 ms) and 127 decode
    steps of 19.3 ms ≈ 2.48 s (Argonne measured 2.46 s).
    """
    alpha, beta = step.decode_affine(batch)
    n = length - 1
    ctx_sum = batch * (n * length + n * (n + 1) / 2)
    return batch_prefill_time(step, length, batch) + n * alpha + beta * ctx_sum


def batch_prefill_time(step: StepTimeModel, length: int, batch: int) -> float:
    """Prefill of ``batch`` prompts of ``length`` tokens submitted at once: whole prompts, at most
    :data:`PREFILL_BUDGET_TOKENS` per step — the time to the batch's first tokens (Argonne TTFT).
    """
    per_step = max(1, PREFILL_BUDGET_TOKENS // length)
    t = 0.0
    left = batch
    while left > 0:
        k = min(per_step, left)
        t += step.step_time(k * length, k * prefill_attn_pairs(length, 0), 0, 0)
        left -= k
    return t


@dataclass(frozen=True, slots=True)
class ArgonneFit:
    step: StepTimeModel
    mape: float
    """Median absolute percentage error of the batch latency over the fitted runs."""
    max_error: float
    runs: int
    excluded: int
    """Runs whose ``batch·2·length`` tokens exceed the deployment's KV capacity (not fitted)."""


def fit_argonne(
    runs: Sequence[ArgonneRun],
    fixed: StepTimeModel,
    streaming_s: float,
    capacity_tokens: int,
) -> ArgonneFit:
    """Fit the per-step constant, ``decode_seq`` and ``kv_token`` of ``fixed`` to batch latencies.

    Kept from ``fixed``: the prefill terms (``prefill_token``, ``prefill_attn``, ``prefill_step``),
    the roofline rate ``linear_token`` and the TP terms. The fitted constant ``t0`` of a decode
    step (besides the TP all-reduces) is split into the linear floor — at most ``streaming_s``,
    the time the GPU needs to stream its weights once — and ``c0``, the rest; a decode step cannot
    tell them apart, a prefill step hides the floor under its compute. Robust (soft-L1) least
    squares of the relative error; runs that cannot fit the KV cache are left out (vLLM would
    preempt and recompute).

    Example, H100 TP4 Llama-3-70B (20 runs): ``t0`` 14.4 ms, of which 14.0 ms streams the
    35 GB of weights per GPU at 2.51 TB/s; 51 µs per sequence; 55 ns per context token.
    """
    kept = [r for r in runs if r.batch * 2 * r.length <= capacity_tokens]
    if not kept:
        raise ValueError("no Argonne runs fit the KV capacity")
    y = np.array([r.latency_s for r in kept])

    def with_x(x: np.ndarray) -> StepTimeModel:
        t0, d, k = (float(v) for v in x)
        floor = min(t0, streaming_s)
        return replace(fixed, c0_s=t0 - floor, linear_floor_s=floor, decode_seq_s=d, kv_token_s=k)

    def residuals(x: np.ndarray) -> np.ndarray:
        step = with_x(x)
        predicted = np.array([batch_latency(step, r.length, r.batch) for r in kept])
        return np.asarray(predicted / y - 1.0)

    scale = np.array([1e-2, 1e-4, 1e-7])
    best = None
    for t00, d0 in ((streaming_s, 1e-4), (2 * streaming_s, 1e-3)):
        fit = least_squares(
            residuals,
            np.array([t00, d0, 1e-7]),
            bounds=(0.0, np.inf),
            x_scale=scale,
            loss="soft_l1",
            f_scale=0.05,
        )
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    errors = np.abs(residuals(best.x))
    return ArgonneFit(
        with_x(best.x),
        float(np.median(errors)),
        float(errors.max()),
        len(kept),
        len(runs) - len(kept),
    )
