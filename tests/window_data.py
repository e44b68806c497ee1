"""Toy window datasets for the window-model tests: pods as M/M/1 prefill queues.

One place that turns a toy pod's rates, lengths and queue into the nine window features the
Prometheus dataset builder produces (``predictor.prometheus_queries.WINDOW_FEATURES``).
"""

from __future__ import annotations

import numpy as np

from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WINDOW_FEATURES
from predictor.prometheus_queries import WindowField as F


def window_features(
    rate: np.ndarray,
    isl: np.ndarray,
    osl: np.ndarray,
    *,
    running: np.ndarray,
    waiting: np.ndarray,
    kv_tokens: np.ndarray,
    prefix: np.ndarray,
) -> dict[str, np.ndarray]:
    """The window features (by name) of pods at ``rate`` req/s with mean lengths ``isl``/``osl``,
    ``running`` requests in flight holding ``kv_tokens`` each of a 400,000-token KV cache."""
    columns = {
        F.REQUEST_RATE: rate,
        F.PROMPT_TOKENS_RATE: rate * isl,
        F.GENERATION_TOKENS_RATE: rate * osl,
        F.MEAN_INPUT_TOKENS: isl,
        F.MEAN_OUTPUT_TOKENS: osl,
        F.KV_CACHE_USAGE: np.minimum(running * kv_tokens / 400_000, 1.0),
        F.NUM_REQUESTS_RUNNING: running,
        F.NUM_REQUESTS_WAITING: waiting,
        F.PREFIX_CACHE_HIT_RATIO: prefix,
    }
    return {f.value: columns[f] for f in WINDOW_FEATURES}


def h100_pool_windows(
    features: dict[str, np.ndarray],
    ttft_s: np.ndarray,
    itl_s: np.ndarray,
    rng: np.random.Generator,
    accelerator: str = "h100",
) -> WindowDataset:
    """One aggregated pool of four pods, a window every 15 s, latencies with log-normal noise."""
    n = len(ttft_s)
    return WindowDataset(
        pod=tuple(f"h100-{i % 4}" for i in range(n)),
        accelerator=(accelerator,) * n,
        role=("aggregated",) * n,
        window_end_s=np.arange(n, dtype=np.float64) * 15.0,
        features=features,
        ttft_s=ttft_s * rng.lognormal(0, 0.05, n),
        itl_s=itl_s * rng.lognormal(0, 0.03, n),
        window_s=60.0,
    )
