"""Each pod's /metrics is scrapeable over real HTTP and reflects values at scrape time."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator.metrics import CONTENT_TYPE, GatewayMetrics, MetricsHTTPServer, VllmMetrics


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return family.samples[0].value
    raise AssertionError(f"{name} not exported")


def test_each_pod_is_served_on_its_own_port_with_values_read_at_scrape_time() -> None:
    pods = {f"pod-{i}": VllmMetrics("llama", extra_labels={"pod": f"pod-{i}"}) for i in range(2)}
    gateway = GatewayMetrics("pool", "llama")
    gateway.set_queue_size(5)
    with MetricsHTTPServer() as server:
        for name, metrics in pods.items():
            server.register(name, metrics)
        server.register("epp", gateway)
        urls = {pod: server.url_for(pod) for pod in server.pods}
        assert len({server.port_for(pod) for pod in server.pods}) == 3
        assert urls["pod-0"].startswith("http://127.0.0.1:")
        assert urls["pod-0"].endswith("/metrics")

        pods["pod-0"].num_requests_waiting = 7
        content_type, text = scrape(urls["pod-0"])
        assert content_type == CONTENT_TYPE
        assert gauge(text, "vllm:num_requests_waiting") == 7
        assert 'pod="pod-0"' in text
        assert 'pod="pod-1"' not in text

        pods["pod-0"].num_requests_waiting = 2
        assert gauge(scrape(urls["pod-0"])[1], "vllm:num_requests_waiting") == 2
        assert gauge(scrape(urls["epp"])[1], "inference_extension_flow_control_queue_size") == 5

        with pytest.raises(urllib.error.HTTPError) as not_found:
            urllib.request.urlopen(urls["pod-1"].replace("/metrics", "/other"), timeout=5)
        assert not_found.value.code == 404

        server.unregister("pod-1")
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(urls["pod-1"], timeout=5)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urls["pod-0"], timeout=5)


def test_a_pod_registered_while_serving_is_served_at_once_and_names_are_unique() -> None:
    server = MetricsHTTPServer().start()
    try:
        server.register("late", VllmMetrics("m"))
        assert "vllm:kv_cache_usage_perc" in scrape(server.url_for("late"))[1]
        with pytest.raises(ValueError, match="already registered"):
            server.register("late", VllmMetrics("m"))
    finally:
        server.stop()
    assert server.pods == []
