"""Synthetic request samples from a small physical model of a vLLM pod, per accelerator.

Why this module exists: the predictor's tests, docs and benchmarks need request-level samples with
a known ground truth — TTFT that grows with the queue ahead, the tokens left to prefill and KV
pressure; TPOT that grows with the batch and with prefill interference — that differ by
accelerator, and that cost nothing to make. Real per-request data (the gateway's posts) is
not in the repository; this generator is the stand-in, deterministic for a seed.

The model, per sample on a pod at load ``u`` (fraction of saturation, 0.1–1.2):

* running ``n ≈ u·max_batch``, waiting ``w ~ Poisson(queue(u))`` with ``queue(u)`` rising
  steeply past ``u = 0.85``, KV use ``≈ n·(context)/kv_tokens``;
* ``TTFT = (prefill_tokens_in_flight + effective_input)/prefill_tps + w·t_wait + itl(n)``,
  times a KV-pressure factor and log-normal noise whose spread grows with ``u``;
* ``TPOT = (α + β·n + κ·decode_tokens_in_flight)·(1 + prefill interference)``, log-normal noise.

Worked example (H100 profile): ``n = 40``, ``w = 0``, 1,000 prompt tokens, prefix 0.5,
2,000 prefill tokens ahead → ``(2000 + 500)/24000 s = 104 ms`` of prefill, plus
``itl(40) = 6 + 0.09·40 = 9.6 ms``: a TTFT median near 114 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictor.features import NUMERIC_FEATURES, FeatureColumns, PodType
from predictor.samples import RequestSamples


@dataclass(frozen=True, slots=True)
class SyntheticAccelerator:
    """Plain numbers describing one accelerator serving one model."""

    name: str
    prefill_tokens_per_s: float
    itl_base_ms: float
    itl_per_seq_ms: float
    itl_per_kv_token_ms: float
    max_batch: int
    kv_tokens: int


SYNTHETIC_ACCELERATORS: tuple[SyntheticAccelerator, ...] = (
    SyntheticAccelerator("H100", 24_000.0, 6.0, 0.09, 2.0e-5, 128, 400_000),
    SyntheticAccelerator("A100", 12_000.0, 9.0, 0.16, 4.0e-5, 96, 220_000),
    SyntheticAccelerator("L40S", 7_000.0, 14.0, 0.30, 7.0e-5, 64, 120_000),
)


def synthetic_samples(
    n: int,
    *,
    seed: int = 0,
    accelerators: tuple[SyntheticAccelerator, ...] = SYNTHETIC_ACCELERATORS,
    load_range: tuple[float, float] = (0.1, 1.2),
    pod_types: tuple[PodType, ...] = (PodType.AGGREGATED,),
    start_s: float = 0.0,
) -> RequestSamples:
    """``n`` request samples spread evenly over ``accelerators`` and ``pod_types``."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(accelerators), n)
    prof = {
        field: np.array([getattr(a, field) for a in accelerators], dtype=np.float64)[which]
        for field in (
            "prefill_tokens_per_s",
            "itl_base_ms",
            "itl_per_seq_ms",
            "itl_per_kv_token_ms",
            "max_batch",
            "kv_tokens",
        )
    }
    u = rng.uniform(*load_range, n)
    isl = np.clip(rng.lognormal(np.log(700.0), 0.8, n), 16, 16_000).round()
    osl = np.clip(rng.lognormal(np.log(180.0), 0.7, n), 4, 4_000).round()
    prefix = np.where(rng.random(n) < 0.5, 0.0, rng.beta(2.0, 2.0, n))
    running = np.minimum(rng.poisson(u * prof["max_batch"]), prof["max_batch"]).astype(float)
    queue_mean = 40.0 * np.maximum(u - 0.85, 0.0) ** 1.5 * prof["max_batch"] / 16 + 0.05 * u
    waiting = rng.poisson(queue_mean).astype(float)
    context = isl + osl / 2
    decode_tokens = (running * rng.normal(1.0, 0.15, n).clip(0.5) * context).round()
    kv = np.clip(decode_tokens / prof["kv_tokens"] + rng.normal(0, 0.01, n), 0.0, 1.0)
    prefill_tokens = (
        (waiting + rng.poisson(u * 2.0)) * rng.lognormal(np.log(700.0), 0.5, n)
    ).round()
    generated = np.floor(rng.random(n) * osl)
    effective = (1.0 - prefix) * isl
    itl = prof["itl_base_ms"] + prof["itl_per_seq_ms"] * running
    prefill_ms = 1000.0 * (prefill_tokens + effective) / prof["prefill_tokens_per_s"]
    kv_pressure = 1.0 + 2.0 * np.maximum(kv - 0.85, 0.0)
    noise_ttft = rng.lognormal(0.0, 0.12 + 0.2 * u, n)
    ttft = (prefill_ms + waiting * 2.0 * itl + itl) * kv_pressure * noise_ttft
    interference = 0.3 * np.minimum(prefill_tokens / prof["prefill_tokens_per_s"], 1.0)
    tpot = (
        (itl + prof["itl_per_kv_token_ms"] * decode_tokens)
        * (1.0 + interference)
        * rng.lognormal(0.0, 0.08 + 0.05 * u, n)
    )
    codes = np.array([p.code for p in pod_types], dtype=np.int8)[rng.integers(0, len(pod_types), n)]
    values = dict(
        zip(
            NUMERIC_FEATURES,
            (kv, isl, waiting, running, prefill_tokens, decode_tokens, prefix, generated),
            strict=True,
        )
    )
    features = FeatureColumns(
        values=values,
        pod_type=codes,
        accelerator=tuple(accelerators[i].name for i in which.tolist()),
    )
    return RequestSamples.build(
        features,
        actual_ttft_ms=ttft,
        actual_tpot_ms=tpot,
        timestamp=start_s + np.arange(n, dtype=np.float64) * 0.01,
    )
