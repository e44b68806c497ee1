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
    """Prefix-cache affinity traded against load (llm-d's default scorer weights 2:1:1).

    score = 2·prefix_cache_score − (kv_cache_percentage + min(1, waiting/5)); the highest wins.
    Example: pod A has 80% of the prompt cached but KV 0.9 and 4 waiting: 1.6 − 1.7 = −0.1;
    pod B has nothing cached, KV 0.3, idle: 0 − 0.3 = −0.3 → A wins.
    """

    name = "prefix-load"
    needs_prefix_score = True
    needs_tokens_in_flight = False
    prefix_weight: ClassVar[float] = 2.0

    def pick(self, request: RoutingRequest, endpoints: Sequence[Endpoint]) -> int:
        best = 0
        best_score = -float("inf")
        for i, e in enumerate(endpoints):
            s = self.prefix_weight * e.prefix_cache_score - load_score(e)
            s -= 1e-3 * e.num_request_running
            if s > best_score:
                best, best_score = i, s
        return best


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
