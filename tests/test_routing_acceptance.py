"""Acceptance: predicted-latency routing beats llm-d's prefix + load-aware routing by ≥ 2x on
p90 TTFT in the upper half of the 25–75 % saturation range of the long-prefill scenario.

The full sweep (five shares of saturation, 600 s each, saturation measured) is
``benchmarks/bench_routing.py``; this test runs the two upper points for 600 s, with the scorer
predicting from the pools' profiles and from request-level models learned online.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_routing import SCORERS, at_rate, run
from simulator.scenario import load_scenario

SATURATION_RPS = 56.0  # measured by benchmarks/bench_routing.py (docs/benchmarks.md)


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.5, 0.75])
def test_predicted_latency_halves_p90_ttft(share: float) -> None:
    base = load_scenario("long-prefill")
    rate = share * SATURATION_RPS
    p90 = {
        label: run(at_rate(base, rate, 600.0, scorer, model)).summary["ttft_s"]["p90"]
        for label, scorer, model in SCORERS
    }
    assert p90["prefix_load"] >= 2.0 * p90["predicted_latency"], p90
    assert p90["prefix_load"] >= 2.0 * p90["predicted_latency_learned"], p90
