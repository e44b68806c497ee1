"""Per-request endpoint selection: the pure half of the gateway.

The gateway (the simulator's, or an llm-d endpoint picker using our scorer) describes each
candidate pod as an :class:`Endpoint` with the same load features llm-d's scorers and latency
predictor use, and asks an :class:`EndpointScorer` for one. Scorers are pure functions of the
request and the endpoints (round-robin keeps one counter), so the simulator and a real gateway
make identical choices from identical inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One candidate pod as the gateway sees it (llm-d feature names)."""

    name: str
    pool: str
    accelerator: str
    pod_type: str  # '', 'prefill' or 'decode' (llm-d's values); '' for aggregated pods
    kv_cache_percentage: float  # 0–1
    num_request_waiting: int
    num_request_running: int
    prefill_tokens_in_flight: int = 0
    decode_tokens_in_flight: int = 0
    prefix_cache_score: float = 0.0  # share of this request's prompt cached on the pod, 0–1


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """What a scorer may know about the request being routed."""

    input_tokens: int
    output_tokens_hint: int
    priority: int = 0
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None


class EndpointScorer(Protocol):
    """Picks the index of one endpoint; ``endpoints`` is never empty."""

    name: str
    needs_prefix_score: bool
    needs_tokens_in_flight: bool

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int: ...


class RoundRobin:
    """Cycles through endpoints in the order given."""

    name = "round-robin"
    needs_prefix_score = False
    needs_tokens_in_flight = False

    def __init__(self) -> None:
        self._next = 0

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int:
        i = self._next % len(endpoints)
        self._next += 1
        return i


def load_score(e: Endpoint, queue_scale: float = 5.0) -> float:
    """Load in [0, 2]: KV usage plus queue depth relative to ``queue_scale`` (capped at 1).

    Example: KV 0.50 and 2 waiting with the default scale → 0.50 + 2/5 = 0.90.
    """
    return e.kv_cache_percentage + min(1.0, e.num_request_waiting / queue_scale)


class LeastLoad:
    """llm-d's queue + KV-cache utilisation scorers with equal weights: the least loaded wins."""

    name = "least-load"
    needs_prefix_score = False
    needs_tokens_in_flight = False

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int:
        best = 0
        best_score = float("inf")
        for i, e in enumerate(endpoints):
            s = load_score(e) + 1e-3 * e.num_request_running
            if s < best_score:
                best, best_score = i, s
        return best


class PrefixLoadAware:
    """llm-d's prefix + load-aware configuration: ``prefix-cache-scorer`` (weight 2) plus
    ``load-aware-scorer`` (weight 1) and a max-score picker, as in llm-d's sample EPP config.

    The prefix score is the share of the prompt cached on the pod (0–1). The load-aware score is
    0.5 for an empty waiting queue, falling linearly to 0 at ``queue_threshold`` (128) waiting
    requests. Ties (common: vLLM admits requests at once, so queues are mostly empty) go round
    robin. Example: pod A caches 75 % of the prompt with 3 waiting → 2·0.75 + 0.5·(1 − 3/128)
    = 1.99; pod B caches nothing, queue empty → 0.5 → A.
    """

    name = "prefix-load"
    needs_prefix_score = True
    needs_tokens_in_flight = False
    prefix_weight: ClassVar[float] = 2.0
    load_weight: ClassVar[float] = 1.0
    queue_threshold: ClassVar[int] = 128

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int:
        scores = []
        for e in endpoints:
            queue = min(e.num_request_waiting, self.queue_threshold) / self.queue_threshold
            load = 0.5 * (1.0 - queue)
            scores.append(self.prefix_weight * e.prefix_cache_score + self.load_weight * load)
        top = max(scores)
        best = [i for i, sc in enumerate(scores) if sc >= top - 1e-12]
        self._turn += 1
        return best[self._turn % len(best)]


SCORERS: dict[str, type[RoundRobin] | type[LeastLoad] | type[PrefixLoadAware]] = {
    RoundRobin.name: RoundRobin,
    LeastLoad.name: LeastLoad,
    PrefixLoadAware.name: PrefixLoadAware,
}


def make_scorer(name: str) -> EndpointScorer:
    """Build a scorer by name; raises ``ValueError`` naming the valid choices."""
    try:
        return SCORERS[name]()
    except KeyError:
        raise ValueError(
            f"unknown scorer {name!r}; choose one of {', '.join(sorted(SCORERS))}"
        ) from None


class LatencyEstimator(Protocol):
    """Predicts (TTFT, TPOT) in seconds for ``request`` if it were sent to each endpoint.

    One call for all candidates: a learned model answers a batch in one booster call.
    """

    def predict(
        self, request: RoutingRequest, endpoints: Sequence[Endpoint]
    ) -> list[tuple[float, float]]: ...


class PredictedLatency:
    """Route by predicted headroom against the SLO (llm-d's predicted-latency scorer, extended).

    headroom = SLO − prediction, per candidate. Candidates with positive TTFT and TPOT headroom
    are preferred; among them the score is ``0.8·ttft_headroom/slo_ttft + 0.2·tpot_headroom/
    slo_tpot`` — most headroom wins (``best_fit=True`` picks the least instead, packing load as
    llm-d's default does). Sheddable requests (priority < 0) always best-fit, so they fill the
    pods that are already busy and leave headroom to the requests that matter. Prefix affinity:
    a pod holding > 80 % of the prompt is kept unless its predicted TTFT is ``affinity_escape_s``
    worse than the best. When every pod violates, idle pods come first, then the lowest TTFT.

    Example: SLO 1 s / 50 ms; pod A predicts 0.4 s / 30 ms → 0.8·0.6 + 0.2·0.4 = 0.56; pod B
    predicts 0.9 s / 20 ms → 0.8·0.1 + 0.2·0.6 = 0.20 → A.
    """

    name = "predicted-latency"
    needs_prefix_score = True
    needs_tokens_in_flight = True

    def __init__(
        self,
        estimator: LatencyEstimator,
        slo_ttft_s: float,
        slo_tpot_s: float,
        best_fit: bool = False,
        affinity_threshold: float = 0.8,
        affinity_escape_s: float = 5.0,
    ) -> None:
        self.estimator = estimator
        self.slo_ttft_s = slo_ttft_s
        self.slo_tpot_s = slo_tpot_s
        self.best_fit = best_fit
        self.affinity_threshold = affinity_threshold
        self.affinity_escape_s = affinity_escape_s

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int:
        if len(endpoints) == 1:
            return 0  # nothing to choose: no prediction needed
        slo_ttft = request.slo_ttft_ms / 1000 if request.slo_ttft_ms else self.slo_ttft_s
        slo_tpot = request.slo_tpot_ms / 1000 if request.slo_tpot_ms else self.slo_tpot_s
        preds = self.estimator.predict(request, endpoints)
        best_ttft = min(p[0] for p in preds)
        candidates = list(range(len(endpoints)))
        sticky = [
            i
            for i in candidates
            if endpoints[i].prefix_cache_score > self.affinity_threshold
            and preds[i][0] - best_ttft < self.affinity_escape_s
        ]
        if sticky:
            candidates = sticky
        fine = [i for i in candidates if preds[i][0] <= slo_ttft and preds[i][1] <= slo_tpot]
        if not fine:
            idle = [
                i
                for i in candidates
                if endpoints[i].num_request_running == 0 and endpoints[i].num_request_waiting == 0
            ]
            pool = idle or candidates
            return min(pool, key=lambda i: (preds[i][0], i))

        def score(i: int) -> float:
            ttft, tpot = preds[i]
            return 0.8 * (slo_ttft - ttft) / slo_ttft + 0.2 * (slo_tpot - tpot) / slo_tpot

        if self.best_fit or request.priority < 0:
            return min(fine, key=lambda i: (score(i), i))
        return max(fine, key=lambda i: (score(i), -i))
