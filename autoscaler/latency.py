"""Per-request latency estimates for the predicted-latency scorer, from pool profiles.

For a request of ``I`` prompt tokens, a fraction ``h`` of them cached on the candidate pod, the
pod must first prefill the ``Q`` tokens already in flight ahead of it, then its own
``(1 − h)·I``; with a token budget ``b`` per step, that takes about ``(Q + (1 − h)·I) / b`` steps
of a full-budget step time ``t_b`` (from the step model, with the pod's running decodes in
the batch):

    TTFT ≈ overhead + max(1, (Q + (1 − h)·I) / b) · t_b
    TPOT ≈ step time of the running decodes plus this request, with the in-flight prefill mixed in

Example (H100, Llama-3-8B, b = 8192): Q = 6,000 tokens in flight, an 8,000-token prompt with no
cache hit → 14,000 / 8,192 = 1.71 steps; t_b ≈ 0.27 s with 20 decodes → TTFT ≈ 0.01 + 0.46 s.
The learned request-level models of the predictor answer the same question once trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.capacity import PoolProfile
from policies.routing import Endpoint, RoutingRequest

BLOCK_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ProfileLatencyEstimator:
    """``policies.routing.LatencyEstimator`` from the pools' calibrated step models."""

    pools: dict[str, PoolProfile]

    def predict(
        self, request: RoutingRequest, endpoints: Sequence[Endpoint]
    ) -> list[tuple[float, float]]:
        return [self.predict_one(request, e) for e in endpoints]

    def predict_one(self, request: RoutingRequest, endpoint: Endpoint) -> tuple[float, float]:
        pp = self.pools[endpoint.pool]
        step = pp.profile.step
        budget = pp.engine.max_num_batched_tokens
        running = endpoint.num_request_running
        context = endpoint.kv_cache_percentage * pp.profile.kv_blocks * BLOCK_TOKENS
        own = request.input_tokens * (1.0 - endpoint.prefix_cache_score)
        work = endpoint.prefill_tokens_in_flight + own
        chunk = min(float(budget), work)
        mean_ctx = context / running if running else 0.0
        t_full = step.step_time(int(chunk), chunk * (mean_ctx + chunk / 2), running, int(context))
        ttft = pp.profile.frontend_overhead_s + max(1.0, work / budget) * t_full
        mixed = min(float(budget), float(endpoint.prefill_tokens_in_flight))
        tpot = step.step_time(
            int(mixed), mixed * mixed / 2, running + 1, int(context + request.input_tokens)
        )
        return ttft, tpot
