"""The online learner of window models: rows per pool, readiness, takeover, retrain cadence."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from autoscaler.learned_capacity import (
    MIN_FINISHED,
    MIN_ROWS,
    LearnedCapacityModel,
    grid_mix,
    window_row,
    witnesses,
)
from autoscaler.sim_adapter import SLOPolicyParams
from policies.types import Capacity, DemandMix, LoadWindow, PoolSnapshot, SLOTarget
from predictor.prometheus_queries import WINDOW_FEATURES, WindowField

SLO = SLOTarget(1.0, 0.05, 0.99)
MIX = DemandMix(1000.0, 200.0, 0.0)
FALLBACK_RPS = 2.0
TICK_S = 15.0
RATES = tuple(1.0 + 0.2 * i for i in range(14))  # per-pod rates 1.0–3.6 req/s, 14 levels


@dataclass
class FakeProfile:
    """The fallback: a fixed capacity, and a record of what it was fed."""

    observed: list[tuple[str, float]] = field(default_factory=list)
    requests: list[tuple[str, float]] = field(default_factory=list)

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        return Capacity(FALLBACK_RPS, 0.3, 0.02, "profile")

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        return 0.1 * rps_per_replica, 0.01

    def observe(self, pool: PoolSnapshot, mix: DemandMix, now: float) -> None:
        self.observed.append((pool.name, now))

    def observe_requests(self, model: str, requests: Iterable[tuple[int, int]], now: float) -> None:
        self.requests.append((model, now))


Latency = Callable[[float], float]


def window(
    rate_per_pod: float, ready: int, ttft: Latency, finished: int | None = None
) -> LoadWindow:
    rps = rate_per_pod * ready
    return LoadWindow(
        window_s=60.0,
        request_rps=rps,
        prompt_tokens_rps=rps * 1000,
        generation_tokens_rps=rps * 200,
        mean_input_tokens=1000.0,
        mean_output_tokens=200.0,
        prefix_hit_ratio=None,
        kv_usage=min(1.0, 0.1 * rate_per_pod),
        running=4.0 * rps,
        waiting=0.0,
        ttft_p90_s=None,
        itl_p90_s=None,
        finished=round(rps * 60) if finished is None else finished,
        ttft_at_target_s=ttft(rate_per_pod),
        tpot_at_target_s=0.02 + 0.002 * rate_per_pod,
    )


def pool(
    load: LoadWindow | None, *, name: str = "a", accelerator: str = "h100", ready: int = 2
) -> PoolSnapshot:
    return PoolSnapshot(name, "m", "aggregated", accelerator, 1, 4.0, ready, ready, 60.0, load)


def steep(rate: float) -> float:
    """p99 TTFT leaves the 1 s objective at sqrt(0.8 / 0.3) ≈ 1.63 req/s per pod."""
    return 0.2 + 0.3 * rate * rate


def flat(rate: float) -> float:
    """Inside the objective at every rate seen."""
    return 0.1 + 0.1 * rate


def feed(model: LearnedCapacityModel, ticks: int, ttft: Latency, start: int = 0) -> None:
    for i in range(start, start + ticks):
        model.observe(pool(window(RATES[i % len(RATES)], 2, ttft)), MIX, i * TICK_S)


def test_a_row_is_per_pod() -> None:
    load = window(2.5, 4, flat)
    row = window_row(pool(load, ready=4))
    assert row is not None
    values = dict(zip(WINDOW_FEATURES, row.features, strict=True))
    assert values[WindowField.REQUEST_RATE] == pytest.approx(2.5)
    assert values[WindowField.PROMPT_TOKENS_RATE] == pytest.approx(2500.0)
    assert values[WindowField.NUM_REQUESTS_RUNNING] == pytest.approx(10.0)  # 40 running / 4
    assert values[WindowField.PREFIX_CACHE_HIT_RATIO] == 0.0  # nothing looked up
    assert row.ttft_s == pytest.approx(flat(2.5))


def test_one_row_per_ready_pool_per_tick() -> None:
    fallback = FakeProfile()
    model = LearnedCapacityModel(fallback)
    model.observe(pool(window(1.0, 2, flat), name="a"), MIX, 0.0)
    model.observe(pool(window(1.0, 2, flat), name="b", accelerator="mi300x"), MIX, 0.0)
    model.observe(pool(window(1.0, 2, flat), name="c", ready=0), MIX, 0.0)  # no ready pod
    model.observe(pool(None, name="d"), MIX, 0.0)  # no window
    model.observe(pool(window(1.0, 2, flat, finished=MIN_FINISHED - 1), name="e"), MIX, 0.0)
    assert model.rows(("m", "h100", "aggregated")) == 1
    assert model.rows(("m", "mi300x", "aggregated")) == 1
    assert [name for name, _ in fallback.observed] == ["a", "b", "c", "d", "e"]
    model.observe_requests("m", [(1000, 200)], 0.0)
    assert fallback.requests == [("m", 0.0)]


def test_the_fallback_answers_until_enough_rows() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS - 1, steep)
    assert model.fits == []
    assert model.capacity(pool(None), MIX, SLO) == Capacity(FALLBACK_RPS, 0.3, 0.02, "profile")
    feed(model, 1, steep, start=MIN_ROWS - 1)
    assert [f.ready for f in model.fits] == [True]
    assert model.ready(("m", "h100", "aggregated"))


def test_it_takes_over_when_the_slo_bounds_capacity_inside_the_rates_seen() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS, steep)
    cap = model.capacity(pool(None), MIX, SLO)
    assert cap.source == "learned"
    assert 1.2 < cap.rps < 2.0  # the p99 TTFT crosses 1 s at ≈ 1.63 req/s per pod
    assert (cap.ttft_p90_s, cap.tpot_p90_s) == model.predict(pool(None), MIX, cap.rps)


def test_the_fallback_answers_when_the_slo_holds_at_every_rate_seen() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS, flat)
    assert model.ready(("m", "h100", "aggregated"))
    assert model.learned_rps(pool(None), MIX, SLO) is None  # observed_range: "at least 3.6"
    assert model.capacity(pool(None), MIX, SLO).source == "profile"


def test_the_fallback_answers_when_even_the_least_load_misses() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS, lambda rate: 1.5 + rate)  # an idle floor, not a capacity
    assert model.learned_rps(pool(None), MIX, SLO) is None
    assert model.capacity(pool(None), MIX, SLO).rps == FALLBACK_RPS


def test_a_bound_needs_windows_that_broke_the_slo_near_it() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS, steep)
    data = model.dataset(("m", "h100", "aggregated"))
    # 4 sweeps of 14 rates: 10 of each sweep (1.8–3.6 req/s) broke the 1 s TTFT
    assert witnesses(data, "aggregated", 1000.0, 200.0, SLO, 1.63) == 40
    assert witnesses(data, "aggregated", 1000.0, 200.0, SLO, 3.5) == 12  # 3.2–3.6 (≥ 0.9 × 3.5)
    assert witnesses(data, "aggregated", 2000.0, 200.0, SLO, 1.63) == 0  # another mix
    assert witnesses(data, "decode", 1000.0, 200.0, SLO, 1.63) == 0  # TPOT never broke
    assert model.learned_rps(pool(None), DemandMix(2000.0, 200.0), SLO) is None


def test_expert_parallel_pools_get_the_fallback() -> None:
    model = LearnedCapacityModel(FakeProfile())
    feed(model, MIN_ROWS, steep)
    ep = PoolSnapshot("a", "m", "expert-parallel", "h100", 8, 4.0, 1, 1, 60.0, None)
    assert model.capacity(ep, MIX, SLO).source == "profile"


def test_retraining_follows_simulated_time_deterministically() -> None:
    runs = []
    for _ in range(2):
        model = LearnedCapacityModel(FakeProfile(), retrain_every_s=300.0)
        feed(model, MIN_ROWS + 45, steep)
        runs.append((model.fits, model.capacity(pool(None), MIX, SLO)))
    first_fit = (MIN_ROWS - 1) * TICK_S  # the tick that brought the MIN_ROWS-th row
    assert [f.t for f in runs[0][0]] == [first_fit, first_fit + 300.0, first_fit + 600.0]
    assert [f.rows for f in runs[0][0]] == [MIN_ROWS, MIN_ROWS + 20, MIN_ROWS + 40]
    assert runs[0] == runs[1]


def test_the_query_mix_is_on_a_grid() -> None:
    assert grid_mix(DemandMix(1024.0, 187.0, 0.23)) == (1000.0, 190.0, 0.25)
    assert grid_mix(DemandMix(0.0, 0.5, 1.2)) == (1.0, 1.0, 1.0)


def test_the_policy_param_picks_the_model() -> None:
    assert SLOPolicyParams().capacity_model == "profile"
    assert SLOPolicyParams.model_validate({"capacity_model": "learned"}).capacity_model == "learned"
    with pytest.raises(ValueError, match="capacity_model"):
        SLOPolicyParams.model_validate({"capacity_model": "oracle"})
