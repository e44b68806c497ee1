"""VllmMetrics exports vLLM V1's families exactly (shared/reference/vllm-metrics.md), and its
snapshots give the controller PromQL's answers (increase, histogram_quantile)."""

from __future__ import annotations

import math

import pytest

from simulator.metrics import (
    ITERATION_TOKENS_BUCKETS,
    ITL_BUCKETS,
    LEGACY_ITL_NAME,
    REQUEST_LATENCY_BUCKETS,
    TTFT_BUCKETS,
    VllmMetrics,
    build_1_2_5_buckets,
)

# Copied from shared/reference/vllm-metrics.md (read from vllm/v1/metrics/loggers.py).
REFERENCE_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                  5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
REFERENCE_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                 7.5, 10.0, 20.0, 40.0, 80.0]  # fmt: skip
REFERENCE_REQUEST_LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                             50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
REFERENCE_ITERATION_TOKENS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]

HISTOGRAM_BUCKETS = {
    "vllm:time_to_first_token_seconds": REFERENCE_TTFT,
    "vllm:inter_token_latency_seconds": REFERENCE_ITL,
    "vllm:request_time_per_output_token_seconds": REFERENCE_ITL,
    "vllm:e2e_request_latency_seconds": REFERENCE_REQUEST_LATENCY,
    "vllm:request_queue_time_seconds": REFERENCE_REQUEST_LATENCY,
    "vllm:request_inference_time_seconds": REFERENCE_REQUEST_LATENCY,
    "vllm:request_prefill_time_seconds": REFERENCE_REQUEST_LATENCY,
    "vllm:request_decode_time_seconds": REFERENCE_REQUEST_LATENCY,
    "vllm:request_prompt_tokens": build_1_2_5_buckets(8192),
    "vllm:request_generation_tokens": build_1_2_5_buckets(8192),
    "vllm:iteration_tokens_total": REFERENCE_ITERATION_TOKENS,
}
GAUGES = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}
COUNTERS = {
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:num_preemptions_total",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
}


def test_bucket_constants_are_exactly_the_reference() -> None:
    assert list(TTFT_BUCKETS) == REFERENCE_TTFT
    assert list(ITL_BUCKETS) == REFERENCE_ITL
    assert list(REQUEST_LATENCY_BUCKETS) == REFERENCE_REQUEST_LATENCY
    assert list(ITERATION_TOKENS_BUCKETS) == REFERENCE_ITERATION_TOKENS


@pytest.mark.parametrize(
    ("max_model_len", "last"),
    [(4096, 2000), (8192, 5000), (32768, 20000), (131072, 100000), (1, 1), (100, 100)],
)
def test_1_2_5_buckets_stop_at_max_model_len(max_model_len: int, last: int) -> None:
    buckets = build_1_2_5_buckets(max_model_len)
    assert buckets[:6] == (1, 2, 5, 10, 20, 50)[: len(buckets)]
    assert buckets[-1] == last
    assert all(b <= max_model_len for b in buckets)


def series_names(metrics: VllmMetrics) -> set[str]:
    return {s.name for s in metrics.samples()}


def test_samples_carry_every_reference_series_with_model_name_and_engine_labels() -> None:
    m = VllmMetrics("llama-3-8b", engine="1", extra_labels={"pod": "decode-0"})
    samples = m.samples()
    names = {s.name for s in samples}
    assert names >= GAUGES
    assert names >= COUNTERS
    for family in HISTOGRAM_BUCKETS:
        assert {family + "_bucket", family + "_count", family + "_sum"} <= names
    assert LEGACY_ITL_NAME + "_bucket" not in names
    for s in samples:
        labels = dict(s.labels)
        assert labels["model_name"] == "llama-3-8b"
        assert labels["engine"] == "1"
        assert labels["pod"] == "decode-0"
        assert list(labels) == sorted(labels), "labels are sorted by name, like the exposition"


def test_histogram_samples_have_the_reference_buckets_cumulative_with_inf_equal_to_count() -> None:
    m = VllmMetrics("m")
    m.time_to_first_token.observe(0.05)
    m.time_to_first_token.observe(3000.0)
    m.inter_token_latency.observe_arithmetic(0.02, 0.001, 50, weight=4)
    by_family: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, float] = {}
    for s in m.samples():
        if s.name.endswith("_bucket"):
            le = s.label("le")
            assert le is not None
            by_family.setdefault(s.name[: -len("_bucket")], []).append((float(le), s.value))
        elif s.name.endswith("_count"):
            counts[s.name[: -len("_count")]] = s.value
    assert set(by_family) == set(HISTOGRAM_BUCKETS)
    for family, buckets in by_family.items():
        edges = [le for le, _ in buckets]
        assert edges == [*map(float, HISTOGRAM_BUCKETS[family]), math.inf], family
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{family} buckets must be cumulative"
        assert values[-1] == counts[family]
    assert counts["vllm:time_to_first_token_seconds"] == 2
    assert counts["vllm:inter_token_latency_seconds"] == 200


def test_legacy_itl_name_looks_like_vllm_0_10() -> None:
    m = VllmMetrics("m", itl_name=LEGACY_ITL_NAME)
    m.inter_token_latency.observe(0.03)
    names = series_names(m)
    assert "vllm:time_per_output_token_seconds_bucket" in names
    assert "vllm:inter_token_latency_seconds_bucket" not in names
    assert "vllm:request_time_per_output_token_seconds_bucket" not in names  # added in 0.11


def test_unknown_itl_name_and_bad_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="itl_name"):
        VllmMetrics("m", itl_name="vllm:itl")
    with pytest.raises(ValueError, match="set by the metrics"):
        VllmMetrics("m", extra_labels={"engine": "x"})
    with pytest.raises(ValueError, match="invalid"):
        VllmMetrics("m", extra_labels={"pod-name": "x"})
    with pytest.raises(ValueError, match="invalid"):
        VllmMetrics("m", extra_labels={"__name__": "x"})


def test_request_success_exports_vllm_reasons_at_zero_and_new_reasons_on_first_use() -> None:
    m = VllmMetrics("m")
    m.request_success()
    m.request_success("length", n=2)
    m.request_success("error")
    success = {
        s.label("finished_reason"): s.value
        for s in m.samples()
        if s.name == "vllm:request_success_total"
    }
    assert success == {"stop": 1, "length": 2, "abort": 0, "error": 1}
    snap = m.snapshot()
    assert snap.finished_requests == 4
    assert snap.finished("length") == 2
    assert snap.finished("repetition") == 0


def test_snapshot_is_a_copy_and_since_gives_window_increases() -> None:
    m = VllmMetrics("m")
    m.prompt_tokens += 1000
    m.request_success("stop", 3)
    m.time_to_first_token.observe(0.2)
    before = m.snapshot()

    m.prompt_tokens += 500
    m.generation_tokens += 40
    m.num_requests_running = 7
    m.kv_cache_usage_perc = 0.5
    m.request_success("stop", 2)
    m.request_success("abort")
    for _ in range(9):
        m.time_to_first_token.observe(0.07)
    m.time_to_first_token.observe(30.0)
    after = m.snapshot()

    assert before.prompt_tokens == 1000, "a snapshot must not follow later updates"
    window = after.since(before)
    assert window.prompt_tokens == 500
    assert window.generation_tokens == 40
    assert window.num_requests_running == 7
    assert window.kv_cache_usage_perc == 0.5
    assert dict(window.request_success) == {"stop": 2, "length": 0, "abort": 1}
    assert window.time_to_first_token.count == 10
    # histogram_quantile(0.5, increase(ttft_bucket[window])): rank 5 of 9 in (0.06, 0.08]
    assert window.time_to_first_token.quantile(0.5) == pytest.approx(0.06 + 0.02 * 5 / 9)
    assert window.time_to_first_token.quantile(0.99) == pytest.approx(20.0 + 20.0 * 0.9)


def test_since_treats_a_restarted_pod_like_promql_treats_a_counter_reset() -> None:
    old = VllmMetrics("m")
    old.prompt_tokens = 5000
    old.time_to_first_token.observe(1.0)
    restarted = VllmMetrics("m")
    restarted.prompt_tokens = 30
    window = restarted.snapshot().since(old.snapshot())
    assert window.prompt_tokens == 30
    assert window.time_to_first_token.count == 0
    with pytest.raises(ValueError, match="cannot diff"):
        VllmMetrics("m", engine="1").snapshot().since(old.snapshot())


def test_record_finished_request_uses_vllms_interval_definitions() -> None:
    m = VllmMetrics("m")
    m.record_finished_request(
        finish_reason="length",
        arrival_s=100.0,
        queued_s=100.5,
        scheduled_s=102.0,
        first_token_s=102.75,
        last_token_s=112.75,
        prompt_tokens=900,
        generation_tokens=201,
        finished_s=113.0,
    )
    snap = m.snapshot()
    assert snap.finished("length") == 1
    assert snap.e2e_request_latency.sum == 13.0
    assert snap.request_queue_time.sum == 1.5
    assert snap.request_prefill_time.sum == 0.75
    assert snap.request_decode_time.sum == 10.0
    assert snap.request_inference_time.sum == 10.75
    assert snap.request_time_per_output_token.sum == 10.0 / 200  # the first token is prefill's
    assert snap.request_prompt_tokens.sum == 900
    assert snap.request_generation_tokens.count == 1
    single = VllmMetrics("m")
    single.record_finished_request(
        finish_reason="stop",
        arrival_s=0.0,
        queued_s=0.0,
        scheduled_s=0.0,
        first_token_s=0.2,
        last_token_s=0.2,
        prompt_tokens=10,
        generation_tokens=1,
    )
    assert single.request_time_per_output_token.counts[0] == 1  # TPOT 0 for one token
    assert single.e2e_request_latency.sum == 0.2
