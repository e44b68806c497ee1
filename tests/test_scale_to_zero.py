"""Acceptance: a pool reaches zero after proven idleness, and the first requests after the idle
period wait at the gateway and are served within start-up time + TTFT SLO, none failed."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.policies import build_scorer, prepare_policy
from simulator.cluster import DONE
from simulator.runner import build_trace, run_scenario
from simulator.scenario import load_scenario


@pytest.fixture(scope="module")
def run():
    sc = load_scenario("scale-to-zero")
    trace = build_trace(sc)
    sc, controller = prepare_policy("slo", sc, trace)
    return sc, run_scenario(sc, controller=controller, trace=trace, scorer=build_scorer(sc))


def test_pool_reaches_zero_only_after_the_idle_proof(run) -> None:
    sc, result = run
    params = sc.policy.params
    busy_until = 1800.0  # the first stage of the trace
    zero_at = [s.t for s in result.output.samples if s.replicas[0] == 0]
    assert zero_at, "the pool never scaled to zero"
    assert min(zero_at) >= busy_until + params["idle_before_zero_s"]
    assert any(t < 9000.0 for t in zero_at)  # it was at zero when the burst came


def test_first_requests_after_idle_are_held_and_served_in_time(run) -> None:
    sc, result = run
    rec = result.output.records
    first = np.where(rec.arrival >= 9000.0)[0][:20]
    assert (rec.status[first] == DONE).all()
    bound = sc.pool_specs()[0].startup_time_s() + sc.slo.ttft_ms / 1000
    assert (rec.ttft()[first] <= bound).all(), (rec.ttft()[first], bound)
    assert result.summary["failed"] == 0
