"""The text exposition is what vLLM's prometheus_client prints, byte for byte, and parses back."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Histogram as ClientHistogram
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from simulator.metrics import (
    QUEUE_SIZE_NAME,
    RESOURCE_EXHAUSTED,
    GatewayMetrics,
    MetricsSnapshot,
    VllmMetrics,
    render_prometheus_text,
)
from simulator.metrics.samples import FamilySamples, MetricFamily, format_value
from simulator.metrics.vllm import _COUNTERS, _GAUGES, _HISTOGRAMS, build_1_2_5_buckets

CREATED = 1_700_000_000.25
LABELNAMES = ["model_name", "engine", "pod"]
LABELVALUES = ["llama", "0", 'pod-"a"\\b']  # quote and backslash: escaping must match too


def exercised_pod() -> VllmMetrics:
    m = VllmMetrics("llama", extra_labels={"pod": LABELVALUES[2]}, created_s=CREATED)
    m.num_requests_running = 12
    m.num_requests_waiting = 3
    m.kv_cache_usage_perc = 0.4375
    m.prompt_tokens += 123_456
    m.generation_tokens += 7_890
    m.num_preemptions += 2
    m.prefix_cache_queries += 4096
    m.prefix_cache_hits += 1024
    m.request_success("stop", 5)
    m.request_success("length", 1)
    for v in (0.001, 0.0123, 0.5, 2560.0, 9999.0):
        m.time_to_first_token.observe(v)
    for v in (0.01, 0.02, 0.02, 0.3):
        m.inter_token_latency.observe(v)
        m.request_time_per_output_token.observe(v)
    for v in (0.3, 12.0, 8000.0):
        m.e2e_request_latency.observe(v)
        m.request_queue_time.observe(v / 10)
        m.request_inference_time.observe(v / 2)
        m.request_prefill_time.observe(v / 5)
        m.request_decode_time.observe(v / 3)
    for v in (1, 2, 5, 700, 8192, 9000):
        m.request_prompt_tokens.observe(v)
        m.request_generation_tokens.observe(v // 2)
        m.iteration_tokens.observe(v * 3)
    return m


def client_registry_like(m: VllmMetrics) -> CollectorRegistry:
    """The same values registered through prometheus_client the way vLLM registers them."""
    registry = CollectorRegistry()
    children: list[Counter | ClientHistogram] = []
    for attr, name, help_ in _GAUGES:
        Gauge(name, help_, LABELNAMES, registry=registry).labels(*LABELVALUES).set(getattr(m, attr))
    for attr, name, help_ in _COUNTERS:
        child = Counter(name, help_, LABELNAMES, registry=registry).labels(*LABELVALUES)
        child.inc(getattr(m, attr))
        children.append(child)
    success = Counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        [*LABELNAMES, "finished_reason"],
        registry=registry,
    )
    for reason, n in m.request_success_counts.items():
        child = success.labels(*LABELVALUES, reason)
        child.inc(n)
        children.append(child)
    token_buckets = build_1_2_5_buckets(m.max_model_len)
    for attr, name, help_, buckets in _HISTOGRAMS:
        ours = getattr(m, attr)
        hist = ClientHistogram(
            name, help_, LABELNAMES, buckets=buckets or token_buckets, registry=registry
        )
        hist_child = hist.labels(*LABELVALUES)
        # copy the bucket counts and the sum rather than replaying observations, so _sum is
        # the identical float
        for i, c in enumerate(ours.counts):
            hist_child._buckets[i].set(c)
        hist_child._sum.set(ours.sum)
        children.append(hist_child)
    for created in children:
        created._created = CREATED
    return registry


def test_text_is_byte_identical_to_prometheus_client() -> None:
    m = exercised_pod()
    expected = generate_latest(client_registry_like(m)).decode()
    assert render_prometheus_text([m]) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1.0"), (0.001, "0.001"), (2560.0, "2560.0"), (100000.0, "100000.0"), (1e6, "1e+06"),
     (1.7e9, "1.7e+09"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (0, "0.0")],
)  # fmt: skip
def test_value_formatting_is_floatToGoString(value: float, text: str) -> None:
    assert format_value(value) == text


def parse(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_exposition_parses_back_with_reference_types_and_buckets() -> None:
    m = exercised_pod()
    families = parse(render_prometheus_text([m]))
    for _, name, _ in _GAUGES:
        assert families[name].type == "gauge"
    for _, name, _ in _COUNTERS:
        family = families[name]  # the parser strips _total from the family name
        assert family.type == "counter"
        assert [s.name for s in family.samples] == [name + "_total"]
        assert families[name + "_created"].samples[0].value == CREATED
    assert families["vllm:prompt_tokens"].samples[0].value == 123_456
    success = {
        s.labels["finished_reason"]: s.value for s in families["vllm:request_success"].samples
    }
    assert success == {"stop": 5.0, "length": 1.0, "abort": 0.0}

    for _, name, _, buckets in _HISTOGRAMS:
        family = families[name]
        assert family.type == "histogram"
        bucket_samples = [s for s in family.samples if s.name == name + "_bucket"]
        les = [s.labels["le"] for s in bucket_samples]
        edges = buckets or build_1_2_5_buckets(8192)
        assert les == [format_value(b) for b in edges] + ["+Inf"]
        values = [s.value for s in bucket_samples]
        assert values == sorted(values)
        (count,) = (s.value for s in family.samples if s.name == name + "_count")
        assert values[-1] == count
        assert {s.labels["pod"] for s in family.samples} == {LABELVALUES[2]}
    ttft = families["vllm:time_to_first_token_seconds"]
    first_le = ttft.samples[0]
    assert (first_le.labels["le"], first_le.value) == ("0.001", 1.0)  # 0.001 <= le="0.001"
    assert families["vllm:iteration_tokens_total"].samples[0].labels["le"] == "1.0"


def test_created_series_can_be_left_out() -> None:
    text = render_prometheus_text([VllmMetrics("m")], include_created=False)
    assert "_created" not in text
    assert "vllm:prompt_tokens_total" in text


def test_several_pods_share_one_help_and_type_per_family() -> None:
    pods = [VllmMetrics("m", extra_labels={"pod": f"p{i}"}) for i in range(3)]
    text = render_prometheus_text(pods)
    assert text.count("# TYPE vllm:num_requests_running gauge") == 1
    running = parse(text)["vllm:num_requests_running"].samples
    assert [s.labels["pod"] for s in running] == ["p0", "p1", "p2"]


def test_gateway_exposition_uses_epp_names_and_labels() -> None:
    gw = GatewayMetrics("pool-a", "llama", target_model_name="llama-8b")
    assert render_prometheus_text([gw]) == "", "a Go metric vector without children is absent"
    gw.set_queue_size(4)
    gw.set_queue_size(2, priority=-1, fairness_id="tenant-b")
    gw.record_scheduled(10)
    gw.record_shed(3)
    text = render_prometheus_text([gw])
    assert "_created" not in text  # client_golang's text format has none
    families = parse(text)
    queue = {
        (s.labels["fairness_id"], s.labels["priority"]): s.value
        for s in families[QUEUE_SIZE_NAME].samples
    }
    assert queue == {("default-flow", "0"): 4.0, ("tenant-b", "-1"): 2.0}
    for s in families[QUEUE_SIZE_NAME].samples:
        assert s.labels["inference_pool"] == "pool-a"
        assert s.labels["model_name"] == "llama"
        assert s.labels["target_model_name"] == "llama-8b"
    (errors,) = families["inference_objective_request_error"].samples
    assert errors.name == "inference_objective_request_error_total"
    assert errors.labels["error_code"] == RESOURCE_EXHAUSTED
    assert errors.value == 3
    assert families["inference_objective_request"].samples[0].value == 10
    assert gw.queue_size == 6
    assert gw.shed_total == 3
    assert gw.snapshot().queue_size == 6


def test_bucket_layouts_may_differ_but_family_descriptions_may_not() -> None:
    short = VllmMetrics("m", extra_labels={"pod": "a"}, max_model_len=4096)
    long = VllmMetrics("m", extra_labels={"pod": "b"})
    text = render_prometheus_text([short, long])  # one family, two bucket layouts
    assert text.count("# TYPE vllm:request_prompt_tokens histogram") == 1
    assert 'le="5000.0",model_name="m",pod="b"' in text
    assert 'le="5000.0",model_name="m",pod="a"' not in text

    class OtherHelp:
        """A source whose first family has vLLM's name but another HELP text."""

        def snapshot(self) -> _OtherHelpSnapshot:
            return _OtherHelpSnapshot(VllmMetrics("m").snapshot())

    with pytest.raises(ValueError, match="described differently"):
        render_prometheus_text([short, OtherHelp()])


class _OtherHelpSnapshot:
    def __init__(self, inner: MetricsSnapshot) -> None:
        self._inner = inner
        self.identity = inner.identity
        self.created_s = inner.created_s

    def collect(self) -> list[FamilySamples]:
        families = self._inner.collect()
        first = families[0]
        changed = MetricFamily(first.family.name, first.family.type, "another help text")
        return [FamilySamples(changed, first.groups), *families[1:]]
