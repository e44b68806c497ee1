"""The baselines' simulator adapters: inventory, sync grid, offline profiles, and each baseline
driving a short simulated run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.baseline_adapters import (
    Actuator,
    decode_profile,
    hpa_kv_controller,
    prefill_profile,
    replica_floor,
)
from autoscaler.policies import POLICIES, build_scorer, prepare_policy
from simulator.runner import build_trace, run_scenario
from simulator.scenario import load_scenario
from tests.tiny_scenario import tiny_scenario

TINY = tiny_scenario(30.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_actuator_keeps_pods_beyond_the_inventory_unschedulable() -> None:
    sc = load_scenario("hetero-llama8b")
    act = Actuator.for_scenario(sc)
    act.spec["llama8b-mi300x"] = 5
    assert act.schedulable()["llama8b-mi300x"] == sc.inventory["mi300x"]
    assert act.unschedulable("llama8b-mi300x") == 5 - sc.inventory["mi300x"]
    assert act.unschedulable("llama8b-h100") == 0


def test_floors_follow_the_scenarios_scale_to_zero_list() -> None:
    assert replica_floor(load_scenario("scale-to-zero"), "llama8b-h100") == 0
    assert (
        replica_floor(load_scenario("servegen-diurnal"), "llama8b-h100") == 1
    )  # min 0, not listed


def test_offline_profiles_are_physical() -> None:
    spec = load_scenario("servegen-diurnal").pool_specs()[0]
    pre = prefill_profile(spec.profile, spec.engine)
    assert list(pre.ttft_s) == sorted(pre.ttft_s)  # longer prompts take longer
    assert pre.isl[-1] == min(spec.engine.max_model_len, spec.profile.kv_tokens) - 1
    dec = decode_profile(spec.profile, spec.engine)
    for row in dec.rows:
        assert list(row.itl_s) == sorted(row.itl_s)  # bigger batches step slower ...
        assert list(row.thpt_per_gpu) == sorted(row.thpt_per_gpu)  # ... but carry more
        assert row.concurrency[-1] * row.context <= spec.profile.kv_tokens


def test_hpa_acts_only_on_its_sync_grid(tiny: Path) -> None:
    sc = load_scenario(str(tiny))
    ctl = hpa_kv_controller(sc)
    trace = build_trace(sc).window(0.0, 40.0)
    result = run_scenario(sc, controller=ctl, trace=trace, scorer=build_scorer(sc))
    assert result.summary["requests"] > 0
    assert ctl._sync.next_sync_t % 15.0 == pytest.approx(0.0)


@pytest.mark.parametrize("policy", ["hpa-kv", "keda-queue", "wva-saturation", "dynamo-throughput"])
def test_each_baseline_drives_a_run(tiny: Path, policy: str) -> None:
    assert policy in POLICIES
    sc = load_scenario(str(tiny))
    trace = build_trace(sc, seed=1)
    sc, ctl = prepare_policy(policy, sc, trace)
    assert ctl is not None
    assert ctl.name == policy
    result = run_scenario(sc, controller=ctl, trace=trace, scorer=build_scorer(sc), seed=1)
    s = result.summary
    assert s["policy"] == policy
    assert 0.0 <= s["slo_attainment"] <= 1.0
    assert s["gpu_hours"] > 0
    replicas = [x.replicas[0] for x in result.output.samples]
    assert min(replicas) >= 1  # the pool's bounds hold
    assert max(replicas) <= 4


def test_static_peak_stays_within_the_gpu_inventory(tmp_path: Path) -> None:
    path = tmp_path / "busy.yaml"
    path.write_text(tiny_scenario(120.0))
    sc = load_scenario(str(path))
    trace = build_trace(sc, None, None)
    sized, _ = prepare_policy("static-peak", sc, trace)
    unlimited = sized.pools[0].replicas
    assert unlimited > 2  # the 120 req/s stage needs more than two H100s
    scarce = sc.model_copy(update={"inventory": {"h100": 2}})
    capped, _ = prepare_policy("static-peak", scarce, trace)
    assert capped.pools[0].replicas == 2
