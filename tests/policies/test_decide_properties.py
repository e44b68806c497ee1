"""Invariants of the SLO policy's decision core, checked with Hypothesis."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.decide import decide
from policies.reasons import Reason
from policies.types import (
    BudgetState,
    Capacity,
    ClusterSnapshot,
    DemandMix,
    LoadWindow,
    ModelSnapshot,
    PolicyConfig,
    PolicyState,
    PoolLimits,
    PoolSnapshot,
    SLOTarget,
)

SLO = SLOTarget(1.0, 0.05, 0.99)


@dataclass(frozen=True)
class FixedCapacity:
    """Capacity that depends only on the pool (a stand-in for the predictor)."""

    per_pool: dict[str, float]

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        return Capacity(self.per_pool[pool.name], 0.5, 0.03, "test")

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        return 0.1 + 0.1 * rps_per_replica, 0.02 + 0.005 * rps_per_replica


def window(rps: float) -> LoadWindow:
    return LoadWindow(60, rps, rps * 1000, rps * 200, 1000, 200, 0.0, 0.3, 2 * rps, 0, 0.4, 0.03)


def pool(
    name: str,
    accel: str,
    replicas: int,
    rps: float | None,
    gpus: int = 1,
    price: float = 1.0,
    role: str = "aggregated",
) -> PoolSnapshot:
    return PoolSnapshot(
        name,
        "m",
        role,
        accel,
        gpus,
        price,
        replicas,
        replicas,
        60.0,  # type: ignore[arg-type]
        None if rps is None else window(rps),
    )


def config(**kw: object) -> PolicyConfig:
    base: dict[str, object] = {
        "slo": {"m": SLO},
        "limits": {"a": PoolLimits(1, 20), "b": PoolLimits(0, 10, scale_to_zero=True)},
    }
    base.update(kw)
    return PolicyConfig(**base)  # type: ignore[arg-type]


def snapshot(
    demand: float | None,
    cur_a: int = 3,
    cur_b: int = 0,
    queued: int = 0,
    cap_a: float = 2.0,
    cap_b: float = 1.0,
) -> ClusterSnapshot:
    rps = demand
    return ClusterSnapshot(
        pools=(
            pool("a", "h100", cur_a, rps, gpus=4, price=4.0),
            pool("b", "l40s", cur_b, rps, price=1.5),
        ),
        models=(ModelSnapshot("m", demand, queued),),
        capacity=FixedCapacity({"a": cap_a, "b": cap_b}),
    )


demands = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
currents = st.integers(min_value=0, max_value=20)


@settings(max_examples=150, deadline=None)
@given(demands, currents, currents, st.integers(0, 64))
def test_replicas_stay_within_limits_and_gpu_budget(
    d: float, a: int, b: int, inventory: int
) -> None:
    cfg = config(gpu_inventory={"h100": inventory, "l40s": 6})
    decision, _, _ = decide(snapshot(d, a, b), PolicyState(), cfg, 100.0)
    used: dict[str, int] = {}
    for p in decision.pools:
        lim = cfg.limits[p.pool]
        if p.replicas < lim.min_replicas:
            assert p.reason is Reason.GPUBudget  # only the budget may undercut the minimum
        assert p.replicas <= lim.max_replicas
        gpus = 4 if p.pool == "a" else 1
        accel = "h100" if p.pool == "a" else "l40s"
        used[accel] = used.get(accel, 0) + gpus * p.replicas
    assert used.get("h100", 0) <= inventory
    assert used.get("l40s", 0) <= 6


@settings(max_examples=100, deadline=None)
@given(demands, demands, currents)
def test_total_capacity_is_monotone_in_demand(d1: float, d2: float, cur: int) -> None:
    lo, hi = sorted((d1, d2))
    cfg = config(scale_down_window_s=0.0, limits={"a": PoolLimits(0, 100), "b": PoolLimits(0, 100)})
    caps = {"a": 2.0, "b": 1.0}
    totals = []
    for d in (lo, hi):
        decision, _, _ = decide(snapshot(d, cur, 0), PolicyState(), cfg, 100.0)
        totals.append(sum(caps[p.pool] * p.replicas for p in decision.pools))
    assert totals[0] <= totals[1] + 1e-9


@settings(max_examples=100, deadline=None)
@given(demands, currents, currents)
def test_single_variant_replicas_monotone_in_demand(d: float, extra: int, cur: int) -> None:
    cfg = config(scale_down_window_s=0.0, limits={"a": PoolLimits(0, 100)})
    snap = ClusterSnapshot(
        pools=(pool("a", "h100", cur, d),),
        models=(ModelSnapshot("m", d, 0),),
        capacity=FixedCapacity({"a": 2.0}),
    )
    more = replace(snap, models=(ModelSnapshot("m", d + extra, 0),))
    r1 = decide(snap, PolicyState(), cfg, 100.0)[0].replicas()["a"]
    r2 = decide(more, PolicyState(), cfg, 100.0)[0].replicas()["a"]
    assert r1 <= r2


@settings(max_examples=100, deadline=None)
@given(demands, currents, currents)
def test_repeated_tick_is_idempotent(d: float, a: int, b: int) -> None:
    cfg = config()
    snap = snapshot(d, a, b)
    state = PolicyState()
    first, state1, _ = decide(snap, state, cfg, 10.0)
    again, _, _ = decide(snap, state, cfg, 10.0)
    assert first == again  # pure: same inputs, same outputs
    replay, state3, _ = decide(snap, state1, cfg, 10.0)
    assert replay.replicas() == first.replicas()  # replaying the tick changes nothing
    assert state3 == state1


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.0, max_value=5.0), st.integers(3, 15), st.floats(1.0, 299.0))
def test_no_scale_down_inside_the_stabilization_window(low: float, cur: int, dt: float) -> None:
    cfg = config(scale_down_window_s=300.0)

    def one_pool(demand: float) -> ClusterSnapshot:
        return ClusterSnapshot(
            pools=(pool("a", "h100", cur, demand),),
            models=(ModelSnapshot("m", demand, 0),),
            capacity=FixedCapacity({"a": 2.0}),
        )

    first, state, _ = decide(one_pool(2.0 * cur), PolicyState(), cfg, 0.0)
    assert first.replicas()["a"] >= cur  # the load needed at least the current size
    decision, _, _ = decide(one_pool(low), state, cfg, dt)
    assert decision.replicas()["a"] >= cur


@settings(max_examples=100, deadline=None)
@given(currents, currents, st.integers(0, 40))
def test_missing_data_never_scales_anything(a: int, b: int, ticks: int) -> None:
    cfg = config(idle_before_zero_s=0.0)
    state = PolicyState()
    for t in range(ticks + 1):
        decision, state, _ = decide(snapshot(None, a, b), state, cfg, 15.0 * t)
        assert decision.replicas() == {"a": a, "b": b}
        assert all(p.reason is Reason.HoldOnMissingData for p in decision.pools)


def test_a_pool_without_a_window_never_shrinks_on_demand_alone() -> None:
    """Demand 0 and pool ``b`` at 6 replicas: without a window it holds; with a window showing
    idleness it may go to zero."""
    cfg = config(idle_before_zero_s=0.0, scale_down_window_s=0.0)

    def with_b(load: LoadWindow | None) -> ClusterSnapshot:
        return ClusterSnapshot(
            pools=(pool("a", "h100", 1, 0.0), replace(pool("b", "h100", 6, 0.0), load=load)),
            models=(ModelSnapshot("m", 0.0, 0),),
            capacity=FixedCapacity({"a": 2.0, "b": 2.0}),
        )

    held = decide(with_b(None), PolicyState(), cfg, 100.0)[0].pools[1]
    assert (held.replicas, held.reason) == (6, Reason.HoldOnMissingData)
    kept = decide(with_b(window(0.0)), PolicyState(), cfg, 100.0)[0].pools[1]
    assert kept.replicas == 0  # with a window showing idleness, zero is allowed


def _first_sight_run(demands: list[float | None], cfg: PolicyConfig) -> list[tuple[int, Reason]]:
    """Pool ``a`` (start-up 60 s) at 6 replicas, one tick per 15 s over ``demands``."""
    state, current, seen = PolicyState(), 6, []
    for i, d in enumerate(demands):
        snap = ClusterSnapshot(
            pools=(pool("a", "h100", current, d),),
            models=(ModelSnapshot("m", d, 0),),
            capacity=FixedCapacity({"a": 2.0}),
        )
        decision, state, _ = decide(snap, state, cfg, 15.0 * i)
        current = decision.replicas()["a"]
        seen.append((current, decision.pools[0].reason))
    return seen


def test_a_pool_seen_first_keeps_its_size_for_one_startup_horizon() -> None:
    """Start-up 60 s + one 15 s tick: the first look at a pool may not take away capacity for
    75 s (ticks 0-60), however low the demand; then the 300 s window holds nothing older."""
    seen = _first_sight_run([1.0] * 8, config(scale_down_window_s=300.0))
    assert seen[:5] == [(6, Reason.ScaleDownStabilized)] * 5
    assert seen[5][0] == 1  # t = 75 s: only the low recommendations remain in the window


def test_missing_data_before_the_first_look_does_not_start_the_hold() -> None:
    """Holds on missing data are not recommendations of a pool never seen with data: the
    start-up horizon counts from the first tick with data (t = 150 s here)."""
    seen = _first_sight_run([None] * 10 + [1.0] * 8, config(scale_down_window_s=300.0))
    assert {r for _, r in seen[:10]} == {Reason.HoldOnMissingData}
    assert [n for n, _ in seen[10:15]] == [6] * 5
    assert seen[15][0] == 1


def test_missing_data_after_the_first_look_is_held_a_window() -> None:
    """Once a pool has a history, a hold on missing data counts as a recommendation of its size:
    after metrics come back, the pool does not shrink before a scale-down window has passed."""
    demands: list[float | None] = [20.0] * 2 + [None] * 30 + [1.0] * 40
    seen = _first_sight_run(demands, config(scale_down_window_s=300.0))
    assert seen[31] == (12, Reason.HoldOnMissingData)
    assert [n for n, _ in seen[32:52]] == [12] * 20  # 300 s after the data came back
    assert seen[-1][0] < 12


def test_scale_to_zero_needs_positive_idleness_for_the_configured_time() -> None:
    cfg = config(idle_before_zero_s=600.0)
    state = PolicyState()
    seen = []
    for t in range(0, 1200, 15):
        decision, state, _ = decide(snapshot(0.0, 1, 1), state, cfg, float(t))
        seen.append((t, decision.replicas()["b"], decision.pools[1].reason))
    keep = [r for t, r, _ in seen if t < 600]
    assert all(r == 1 for r in keep)
    assert seen[-1][1] == 0
    assert seen[-1][2] in (Reason.ScaleToZero, Reason.Unchanged, Reason.NoDemand)
    # pool a is not allowed to reach zero
    assert decision.replicas()["a"] >= 1


def test_proven_idleness_is_the_only_wait_before_zero() -> None:
    """Zero comes ``idle_before_zero_s`` after the demand stopped, not a scale-down window later;
    a pool that is not proven idle is still held by the window."""
    cfg = config(idle_before_zero_s=600.0, scale_down_window_s=300.0)
    state, current, zero_at = PolicyState(), 3, None
    for t in range(0, 1800, 15):
        demand = 2.5 if t < 300 else 0.0
        snap = ClusterSnapshot(
            pools=(pool("b", "l40s", current, demand),),
            models=(ModelSnapshot("m", demand, 0),),
            capacity=FixedCapacity({"b": 1.0}),
        )
        decision, state, _ = decide(snap, state, cfg, float(t))
        current = decision.replicas()["b"]
        if current == 0 and zero_at is None:
            zero_at = t
        if t < 300 + 600:
            assert current >= 1, t
    assert zero_at == 300 + 600
    assert state.pools["b"].idle_since == 300.0


def test_every_decision_says_how_much_of_its_capacity_the_error_budget_gave() -> None:
    leaned = PolicyState(budgets={"m": BudgetState(scale=1.5, last_t=100.0)})
    decision, _, _ = decide(snapshot(6.0, 3, 2), leaned, config(), 100.0)
    assert [p.capacity_scale for p in decision.pools] == [1.5, 1.5]
    assert decision.pools[0].capacity_rps == pytest.approx(2.0 * 1.5)
    off, _, _ = decide(snapshot(6.0, 3, 2), leaned, config(learn_from_attainment=False), 100.0)
    assert [p.capacity_scale for p in off.pools] == [1.0, 1.0]
    assert off.pools[0].capacity_rps == pytest.approx(2.0)


def test_wake_up_on_queued_requests() -> None:
    cfg = config()
    decision, _, _ = decide(snapshot(0.0, 1, 0, queued=3), PolicyState(), cfg, 0.0)
    b = next(p for p in decision.pools if p.pool == "b")
    assert b.replicas >= 1
