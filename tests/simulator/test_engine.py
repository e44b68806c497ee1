"""The vLLM V1 engine model: scheduling, KV accounting, prefix caching, preemption, coalescing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.engine import Engine, EngineConfig, Seq, prefix_block_keys
from simulator.kvcache import BlockPool
from simulator.metrics.vllm import VllmMetrics
from simulator.perf.model import StepTimeModel
from simulator.workload import RequestSpec

STEP = StepTimeModel(
    c0_s=0.006, prefill_token_s=6e-5, prefill_attn_s=1e-9, decode_seq_s=2e-5, kv_token_s=3e-8
)


def make_engine(kv_blocks: int = 20_000, coalesce: bool = True, **cfg: object):
    done: list[Seq] = []
    metrics = VllmMetrics("m")
    eng = Engine(STEP, kv_blocks, EngineConfig(**cfg), metrics, done.append, coalesce=coalesce)  # type: ignore[arg-type]
    return eng, done, metrics


def replay(eng: Engine, specs: list[RequestSpec]) -> None:
    for i, spec in enumerate(specs):
        while eng.next_event_time() <= spec.arrival_s:
            eng.run_stretch()
        eng.advance(spec.arrival_s)
        eng.add(Seq(i, spec, spec.arrival_s, spec.output_tokens, prefix_block_keys(spec, 16)))
    while eng.has_work:
        eng.run_stretch()


def random_specs(n: int, rate: float, seed: int, groups: int = 3) -> list[RequestSpec]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    return [
        RequestSpec(
            float(a),
            int(rng.integers(50, 2500)),
            int(rng.integers(1, 400)),
            prefix_ids=(i % groups,),
            prefix_unit_tokens=160,
        )
        for i, a in enumerate(arrivals)
    ]


@pytest.mark.parametrize(("rate", "kv"), [(3.0, 20_000), (8.0, 2_500), (30.0, 1_200)])
def test_coalesced_stretches_equal_step_by_step(rate: float, kv: int) -> None:
    specs = random_specs(600, rate, seed=int(rate))
    results = []
    for coalesce in (True, False):
        eng, done, metrics = make_engine(kv, coalesce=coalesce)
        replay(eng, specs)
        results.append((sorted((s.rid, s.first_token_t, s.finish_t) for s in done), metrics))
    (a, ma), (b, mb) = results
    assert len(a) == len(b) == len(specs)
    for x, y in zip(a, b, strict=True):
        assert x[1] == pytest.approx(y[1], abs=1e-9)
        assert x[2] == pytest.approx(y[2], abs=1e-9)
    assert ma.inter_token_latency.buckets() == mb.inter_token_latency.buckets()
    assert ma.num_preemptions == mb.num_preemptions
    assert ma.generation_tokens == mb.generation_tokens == sum(s.output_tokens for s in specs)


def test_single_request_timing_is_one_prefill_step_then_decode_steps() -> None:
    eng, done, metrics = make_engine()
    spec = RequestSpec(1.0, 1000, 5)
    replay(eng, [spec])
    (seq,) = done
    prefill = STEP.step_time(1000, 1000 * 500, 0, 0)
    assert seq.first_token_t == pytest.approx(1.0 + prefill)
    decode = sum(STEP.step_time(0, 0, 1, 1000 + j + 1) for j in range(4))
    assert seq.finish_t == pytest.approx(1.0 + prefill + decode)
    assert metrics.time_to_first_token.count == 1
    assert metrics.inter_token_latency.count == 4
    assert metrics.request_success_counts["stop"] == 1
    assert metrics.prompt_tokens == 1000
    assert metrics.generation_tokens == 5


def test_long_prompt_is_chunked_by_the_token_budget() -> None:
    eng, done, metrics = make_engine(max_num_batched_tokens=512)
    replay(eng, [RequestSpec(0.0, 1300, 2)])
    assert eng.steps == 3 + 1  # ceil(1300/512) prefill steps, then one decode step
    assert metrics.iteration_tokens.count == 4
    assert metrics.iteration_tokens.sum == 1300 + 1 + 1  # completed prompt + generated tokens
    assert done[0].out == 2


def test_chunked_prefill_disabled_rejects_prompts_over_the_budget_only() -> None:
    eng, done, metrics = make_engine(max_num_batched_tokens=512, enable_chunked_prefill=False)
    replay(eng, [RequestSpec(0.0, 400, 2), RequestSpec(0.1, 900, 2)])
    reasons = {s.rid: s.finish_reason for s in done}
    assert reasons == {0: "stop", 1: "abort"}
    assert metrics.request_success_counts["abort"] == 1


def test_max_num_seqs_bounds_the_batch() -> None:
    eng, done, _ = make_engine(max_num_seqs=4)
    specs = [RequestSpec(0.0, 100, 50) for _ in range(10)]
    peak = 0
    for i, spec in enumerate(specs):
        eng.add(Seq(i, spec, 0.0, spec.output_tokens, []))
    while eng.has_work:
        eng.run_stretch()
        peak = max(peak, len(eng.running))
    assert peak == 4
    assert len(done) == 10


def test_prefix_cache_hits_follow_shared_blocks() -> None:
    eng, done, metrics = make_engine()
    shared = {"prefix_ids": (42,), "prefix_unit_tokens": 128}
    replay(eng, [RequestSpec(0.0, 200, 2, **shared), RequestSpec(5.0, 300, 2, **shared)])  # type: ignore[arg-type]
    assert done[0].prefix_hit_tokens == 0
    assert done[1].prefix_hit_tokens == 128  # 8 full blocks of the shared 128-token prefix
    assert metrics.prefix_cache_queries == 500
    assert metrics.prefix_cache_hits == 128
    # vLLM counts whole prompts, cached tokens included
    assert metrics.prompt_tokens == 500


def test_fully_cached_prompt_still_recomputes_its_last_token() -> None:
    eng, done, _ = make_engine()
    shared = {"prefix_ids": (1,), "prefix_unit_tokens": 256}
    replay(eng, [RequestSpec(0.0, 256, 2, **shared), RequestSpec(5.0, 256, 2, **shared)])  # type: ignore[arg-type]
    assert done[1].prefix_hit_tokens == 240  # vLLM keeps ≥ 1 token to compute: drop the last block


def test_preemption_under_kv_pressure_finishes_everything_and_frees_all_blocks() -> None:
    eng, done, metrics = make_engine(kv_blocks=400)
    specs = [RequestSpec(0.01 * i, 600, 300) for i in range(30)]
    replay(eng, specs)
    assert metrics.num_preemptions > 0
    assert len(done) == 30
    assert all(s.finish_reason == "stop" and s.out == 300 for s in done)
    assert eng.kv.used == 0
    assert metrics.kv_cache_usage_perc == 0.0


def test_every_token_is_counted_once_in_mixed_and_decode_steps() -> None:
    """Each request's first token is a TTFT observation, each later one an inter-token latency."""
    eng, done, metrics = make_engine(kv_blocks=20_000)
    replay(eng, random_specs(300, 8.0, seed=5))
    assert len(done) == 300
    assert metrics.generation_tokens == sum(s.out for s in done)
    assert metrics.inter_token_latency.count == sum(s.out - 1 for s in done)
    assert metrics.time_to_first_token.count == 300


def test_priority_preemption_of_a_scheduled_request_finishes_everything() -> None:
    """Under priority scheduling the victim may already be in this step's batch."""
    eng, done, metrics = make_engine(kv_blocks=300, scheduling_policy="priority")
    specs = [RequestSpec(0.01 * i, 500, 200, priority=i % 3) for i in range(24)]
    replay(eng, specs)
    assert metrics.num_preemptions > 0
    assert len(done) == 24
    assert all(s.finish_reason == "stop" and s.out == 200 for s in done)
    assert eng.kv.used == 0


def test_request_longer_than_max_model_len_is_rejected() -> None:
    eng, done, _ = make_engine(max_model_len=1024)
    replay(eng, [RequestSpec(0.0, 1000, 100)])
    assert done[0].finish_reason == "rejected"


def test_request_arriving_mid_step_waits_for_the_step() -> None:
    eng, done, _ = make_engine()
    replay(eng, [RequestSpec(0.0, 4000, 1), RequestSpec(0.001, 10, 1)])
    first = STEP.step_time(4000, 4000 * 2000, 0, 0)
    assert done[0].first_token_t == pytest.approx(first)
    assert done[1].first_token_t > first  # could not join the step that had already started


def test_remote_kv_request_computes_only_its_last_prompt_token() -> None:
    eng, done, metrics = make_engine()
    spec = RequestSpec(0.0, 3000, 3)
    eng.add(Seq(0, spec, 0.0, 3, [], remote_kv=True))
    while eng.has_work:
        eng.run_stretch()
    assert metrics.prompt_tokens == 3000
    assert done[0].first_token_t == pytest.approx(STEP.step_time(1, 1 * (2999 + 0.5), 0, 0))


def test_priority_scheduling_admits_high_priority_first() -> None:
    eng, done, _ = make_engine(max_num_seqs=1, scheduling_policy="priority")
    eng.add(Seq(0, RequestSpec(0.0, 100, 20), 0.0, 20, []))
    eng.run_stretch()  # request 0 is running
    eng.add(Seq(1, RequestSpec(0.0, 100, 5, priority=-1), 0.0, 5, []))
    eng.add(Seq(2, RequestSpec(0.0, 100, 5, priority=1), 0.0, 5, []))
    while eng.has_work:
        eng.run_stretch()
    order = [s.rid for s in sorted(done, key=lambda s: s.finish_t)]
    assert order == [0, 2, 1]


def test_block_pool_evicts_least_recently_released_prefix_first() -> None:
    pool = BlockPool(total=4)
    assert pool.allocate(0, [1, 2])
    pool.release(0, [1, 2])  # cached, evictable; tail (2) released first
    assert pool.usage == 0.0
    assert pool.cached_prefix_blocks([1, 2]) == 2
    assert pool.allocate(3, [])  # needs one evicted block: the LRU one is key 2
    assert pool.cached_prefix_blocks([1]) == 1
    assert pool.cached_prefix_blocks([2]) == 0
    assert not pool.allocate(2, [])
    assert pool.available == 1  # the cached block 1 can still be reclaimed


def test_block_pool_shares_resident_blocks_without_new_allocation() -> None:
    pool = BlockPool(total=10)
    assert pool.allocate(1, [7, 8])
    assert pool.allocate(1, [7, 8])
    assert pool.used == 4  # two private blocks + two shared ones, counted once
    pool.release(1, [7, 8])
    assert pool.used == 3
    pool.release(1, [7, 8])
    assert pool.used == 0
    assert math.isclose(pool.usage, 0.0)
