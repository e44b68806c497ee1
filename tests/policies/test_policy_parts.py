"""Table-driven tests of the policy parts: sizing, mix, stages, forecast, budget, scorers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from policies.budget import update_budget
from policies.decide import smooth_mix
from policies.forecast import update_forecast, upper_forecast
from policies.normalize import StageInput, normalize
from policies.reasons import Reason
from policies.routing import Endpoint, PredictedLatency, PrefixLoadAware, RoutingRequest
from policies.sizing import Variant, cheapest_mix, replicas_for
from policies.types import (
    BudgetState,
    DemandMix,
    LoadWindow,
    PolicyConfig,
    PoolLimits,
    PoolSnapshot,
    PoolState,
    Recommendation,
    SLOTarget,
)

SLO = SLOTarget(1.0, 0.05, 0.99)


@pytest.mark.parametrize(
    ("demand", "capacity", "expected"),
    [(0.0, 2.0, 0), (0.1, 2.0, 1), (4.0, 2.0, 2), (4.01, 2.0, 3), (1.0, 0.0, 10**9)],
)
def test_replicas_for(demand: float, capacity: float, expected: int) -> None:
    assert replicas_for(demand, capacity) == expected


def test_cheapest_mix_worked_example() -> None:
    h100 = Variant("h100", "h100", 2.0, 16.70, 4, 0, 20)
    mi300x = Variant("mi300x", "mi300x", 1.5, 3.98, 2, 0, 20)
    counts, met = cheapest_mix([h100, mi300x], 10.0, {})
    assert met
    assert counts == {"h100": 0, "mi300x": 7}
    # with only 8 MI300X GPUs the rest must come from H100
    counts, met = cheapest_mix([h100, mi300x], 10.0, {"mi300x": 8})
    assert met
    assert counts["mi300x"] == 4
    assert counts["h100"] == 2  # 4·1.5 + 2·2 = 10 rps


def test_cheapest_mix_reports_when_nothing_fits() -> None:
    counts, met = cheapest_mix([Variant("a", "h100", 1.0, 4.0, 1, 0, 3)], 10.0, {})
    assert not met
    assert counts == {"a": 3}


def stage_input(current: int, **kw: object) -> StageInput:
    base: dict[str, object] = {
        "now": 100.0,
        "current": current,
        "gpus_per_replica": 1,
        "gpus_available": None,
        "limits": PoolLimits(1, 10),
        "config": PolicyConfig(slo={"m": SLO}),
        "state": PoolState(),
        "idle": False,
        "queued": 0,
    }
    base.update(kw)
    return StageInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("recommendation", "kwargs", "expected", "reason"),
    [
        (5, {}, 5, Reason.Unchanged),
        (20, {"current": 8}, 10, Reason.TooManyReplicas),
        (0, {}, 1, Reason.TooFewReplicas),
        (30, {"current": 2}, 6, Reason.ScaleUpLimit),  # max(2 + 4, 2·2)
        (8, {"gpus_available": 5}, 5, Reason.GPUBudget),
        (
            2,
            {"state": PoolState(history=(Recommendation(50.0, 7),))},
            5,
            Reason.ScaleDownStabilized,
        ),
    ],
)
def test_normalization_stages(
    recommendation: int, kwargs: dict[str, object], expected: int, reason: Reason
) -> None:
    x = stage_input(kwargs.pop("current", 5), **kwargs)  # type: ignore[arg-type]
    replicas, stages = normalize(recommendation, x)
    assert replicas == expected
    changed = [s.reason for s in stages if s.reason is not Reason.Unchanged]
    assert (changed[-1] if changed else Reason.Unchanged) is reason


@pytest.mark.parametrize(
    ("then", "now", "held"),
    [
        (0.82, 0.99, 5),  # the docstring's example: ⌈6 · 0.82 / 0.99⌉ = ⌈4.97⌉
        (0.82, 0.82, 6),  # the same estimate: HPA's hold
        (0.99, 0.82, 6),  # a lower estimate holds no more than was asked for
        (0.82, 2.00, 3),  # ⌈2.46⌉: still above the recommendation of 2
        (0.82, 5.00, 2),  # ⌈0.98⌉ = 1 is below it: the pool goes to 2 now
        (None, 0.99, 6),  # a hold on missing data keeps its replicas
    ],
)
def test_scale_down_window_holds_capacity_not_replicas(
    then: float | None, now: float, held: int
) -> None:
    """6 replicas recommended 60 s ago at ``then`` req/s each; 2 now at ``now``."""
    x = stage_input(6, state=PoolState(history=(Recommendation(40.0, 6, then),)), capacity_rps=now)
    replicas, stages = normalize(2, x)
    assert replicas == held
    assert stages[0].reason is (Reason.ScaleDownStabilized if held > 2 else Reason.Unchanged)


def test_capacity_aware_hold_lets_go_after_a_one_tick_dip() -> None:
    """The estimate dips for one tick and the pool is recommended one more replica; once the
    estimate recovers that replica is not held for the rest of the window, as a count would be."""
    rec = Recommendation
    history = (rec(10.0, 5, 1.0), rec(25.0, 6, 0.82), rec(40.0, 5, 0.99))
    x = stage_input(6, now=55.0, state=PoolState(history=history), capacity_rps=1.0)
    assert normalize(5, x)[0] == 5
    plain = tuple(rec(h.t, h.replicas) for h in history)  # HPA's replica-count hold
    y = stage_input(6, now=55.0, state=PoolState(history=plain), capacity_rps=1.0)
    assert normalize(5, y)[0] == 6


def test_forecast_tracks_a_ramp_and_its_upper_quantile_covers_it() -> None:
    state = None
    for t in range(40):
        state = update_forecast(state, 10.0 + 0.5 * t, 15.0 * t)
    assert state is not None
    ahead = upper_forecast(state, horizon_s=120.0, tick_s=15.0, quantile=0.9)
    assert ahead >= 10.0 + 0.5 * 39  # at least the last observation
    assert upper_forecast(state, 120.0, 15.0, 0.9) >= upper_forecast(state, 120.0, 15.0, 0.6)


def test_forecast_is_zero_after_only_zeros() -> None:
    state = None
    for t in range(40):
        state = update_forecast(state, 0.0, 15.0 * t)
    assert state is not None
    assert upper_forecast(state, 120.0, 15.0, 0.9) == 0.0


def test_forecast_forgets_earlier_demand_after_the_quiet_time_only() -> None:
    state = None
    for t in range(40):  # 10 minutes at 5 rps, then 20 ticks (300 s) without a request
        state = update_forecast(state, 5.0 if t < 20 else 0.0, 15.0 * t)
    assert state is not None
    assert upper_forecast(state, 120.0, 15.0, 0.9) >= 5.0  # the guard remembers the traffic
    assert upper_forecast(state, 120.0, 15.0, 0.9, quiet_s=300.0) == 0.0
    assert upper_forecast(state, 120.0, 15.0, 0.9, quiet_s=315.0) >= 5.0  # 21 ticks not seen yet


def window(finished: int, misses: float) -> LoadWindow:
    return LoadWindow(
        60, finished / 60, 0, 0, 1000, 200, 0.0, 0.5, 10, 0, 0.5, 0.03, finished, misses, 0.0
    )


def pool_with(w: LoadWindow) -> PoolSnapshot:
    return PoolSnapshot("a", "m", "aggregated", "h100", 1, 1.0, 4, 4, 60.0, w)


def test_demand_shape_smoothing_worked_example() -> None:
    steady = 60 / (1 - 2 ** (-15 / 120))  # the weight behind a mix after steady traffic
    prev = DemandMix(1000.0, 200.0, 0.50)
    seen = DemandMix(2000.0, 100.0, 0.20)
    out, w = smooth_mix(prev, steady, seen, 60.0, dt=15.0, half_life_s=120.0)
    assert w == pytest.approx(steady)
    assert out.prefix_hit_ratio == pytest.approx(0.475, abs=1e-3)
    assert out.input_tokens == pytest.approx(1000 + 1000 * 60 / steady)
    # with little behind it the mean is cumulative: the second window weighs as much as the first
    first, w1 = smooth_mix(None, 0.0, prev, 60.0, 15.0, 120.0)
    second, _ = smooth_mix(first, w1, seen, 60.0, 15.0, 120.0)
    assert second.prefix_hit_ratio == pytest.approx(
        0.20 + (0.50 - 0.20) * 60 * 0.917 / 115.0, abs=1e-3
    )
    # a tick without requests leaves the shape; no smoothing takes the window as is
    assert smooth_mix(prev, steady, seen, 0.0, 15.0, 120.0)[0] == prev
    assert smooth_mix(prev, steady, seen, 60.0, 15.0, 0.0)[0] == seen


def test_budget_leans_in_when_attainment_is_high_and_backs_off_when_low() -> None:
    good = BudgetState(finished=10_000, misses=10, last_t=0.0)  # 0.999 attained
    up = update_budget(good, [pool_with(window(600, 0))], SLO, 15.0, 0.8, 15, capacity=0.0)
    assert up.scale > 1.0
    idle = update_budget(good, [pool_with(window(600, 0))], SLO, 15.0, 0.2, 15, capacity=0.0)
    assert idle.scale == 1.0  # an idle pool teaches nothing about capacity
    bad = BudgetState(finished=10_000, misses=300, last_t=0.0)  # 0.97 attained
    down = update_budget(bad, [pool_with(window(600, 30))], SLO, 15.0, 0.8, 15, capacity=0.0)
    assert down.scale < 1.0
    assert update_budget(down, [pool_with(window(600, 30))], SLO, 15.0, 0.8, 15, 0.0) == down


def test_budget_forgives_a_back_off_when_the_profile_prices_in_a_shape_shift() -> None:
    backed_off = BudgetState(scale=0.77, finished=10_000, misses=10, last_t=0.0, capacity=33.0)
    windows = [pool_with(window(600, 0))]
    halved = update_budget(backed_off, windows, SLO, 15.0, 0.2, 15, capacity=16.5)
    assert halved.scale == 1.0  # back to the profile (an idle window adds no lean-in)
    assert halved.capacity == 16.5
    # a smaller drop is not a shift; the back-off stays (and recovers by UP at most)
    small = update_budget(backed_off, windows, SLO, 15.0, 0.8, 15, capacity=26.0)
    assert small.scale == pytest.approx(0.77 * 1.01)
    # a lean-in is not forgiven: the shift is only ever counted once, by the profile
    leaned = replace(backed_off, scale=1.6)
    assert update_budget(leaned, windows, SLO, 15.0, 0.8, 15, capacity=16.5).scale > 1.6
    # missing windows still forgive, and remember the capacity they saw
    no_misses = [pool_with(replace(window(600, 0), ttft_misses=None))]
    blind = update_budget(backed_off, no_misses, SLO, 15.0, 0.8, 15, capacity=16.5)
    assert (blind.scale, blind.capacity) == (1.0, 16.5)


def endpoint(
    name: str, waiting: int = 0, running: int = 0, prefix: float = 0.0, prefill: int = 0
) -> Endpoint:
    return Endpoint(name, "p", "h100", "", 0.2, waiting, running, prefill, 0, prefix)


class QueueEstimator:
    """TTFT grows with prefill tokens in flight; TPOT with running requests."""

    def predict(
        self, request: RoutingRequest, endpoints: Sequence[Endpoint]
    ) -> list[tuple[float, float]]:
        out = []
        for e in endpoints:
            work = e.prefill_tokens_in_flight + request.input_tokens * (1 - e.prefix_cache_score)
            out.append((0.05 + work / 10_000, 0.02 + 0.001 * e.num_request_running))
        return out


def test_prefix_load_scorer_follows_the_cache() -> None:
    picks = PrefixLoadAware().pick(
        RoutingRequest(1000, 10), [endpoint("a"), endpoint("b", prefix=0.8)]
    )
    assert picks == 1


def test_predicted_latency_scorer_avoids_the_pod_with_prefill_work_queued() -> None:
    scorer = PredictedLatency(QueueEstimator(), 1.0, 0.05)
    eps = [endpoint("a", prefill=20_000), endpoint("b", prefill=1_000)]
    assert scorer.pick(RoutingRequest(4000, 10), eps) == 1


def test_predicted_latency_keeps_prefix_affinity_unless_far_worse() -> None:
    scorer = PredictedLatency(QueueEstimator(), 1.0, 0.05, affinity_escape_s=0.5)
    warm = endpoint("a", prefix=0.9, prefill=2_000)
    cold = endpoint("b")
    assert scorer.pick(RoutingRequest(4000, 10), [warm, cold]) == 0
    swamped = endpoint("a", prefix=0.9, prefill=60_000)  # 6 s of work queued: escape
    assert scorer.pick(RoutingRequest(4000, 10), [swamped, cold]) == 1


def test_predicted_latency_prefers_idle_pods_when_everything_violates() -> None:
    scorer = PredictedLatency(QueueEstimator(), 0.01, 0.001)
    eps = [endpoint("busy", running=3, prefill=100), endpoint("idle", prefill=5_000)]
    assert scorer.pick(RoutingRequest(1000, 10), eps) == 1


def test_sheddable_requests_best_fit() -> None:
    scorer = PredictedLatency(QueueEstimator(), 2.0, 0.05)
    eps = [endpoint("a", prefill=100), endpoint("b", prefill=9_000)]
    assert scorer.pick(RoutingRequest(1000, 10, priority=0), eps) == 0
    assert scorer.pick(RoutingRequest(1000, 10, priority=-1), eps) == 1  # fills the busier pod
