"""The controller's own metrics and probes: values after a tick, removal with the policy, HTTP,
and every metric documented in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from autoscaler.clock import VirtualClock
from autoscaler.controller_metrics import ControllerMetrics, Health, MetricsServer
from autoscaler.k8s.fake_apiserver import FakeApiServer
from tests.k8s.world import NS, World, policy, pool

ROOT = Path(__file__).resolve().parents[2]
LABELS = {"namespace": NS, "policy": "p", "pool": "a", "accelerator": "H100", "role": "aggregated"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def world(
    fake: FakeApiServer, clock: VirtualClock, api: client.ApiClient, registry: CollectorRegistry
) -> World:
    return World(fake, clock, api, sink=ControllerMetrics(registry))


def test_pool_metrics_after_a_tick(world: World, registry: CollectorRegistry) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)
    world.tick()

    def value(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {**LABELS, **extra})

    assert value("sloscaler_desired_replicas") == 6
    assert value("sloscaler_current_replicas") == 2
    assert value("sloscaler_ready_replicas") == 2
    assert value("sloscaler_capacity_rps") == pytest.approx(4.0)
    assert value("sloscaler_slo_ttft_seconds") == pytest.approx(0.5)
    assert value("sloscaler_slo_tpot_seconds") == pytest.approx(0.05)
    ttft = value("sloscaler_predicted_ttft_seconds")
    assert ttft is not None
    assert 0 < ttft < 0.5
    assert value("sloscaler_decision_reason", reason="DemandForecast") == 1
    assert value("sloscaler_decision_reason", reason="TooManyReplicas") == 0
    assert value("sloscaler_model_ready") == 1
    assert value("sloscaler_model_coverage_ratio") == pytest.approx(0.9)
    assert registry.get_sample_value("sloscaler_tick_duration_seconds_count") == 1
    assert registry.get_sample_value("sloscaler_policies") == 1


def test_series_go_away_with_the_policy(world: World, registry: CollectorRegistry) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)
    world.tick()
    world.custom.delete_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )
    world.tick()
    assert registry.get_sample_value("sloscaler_desired_replicas", LABELS) is None
    assert (
        registry.get_sample_value("sloscaler_decision_reason", {**LABELS, "reason": "NoDemand"})
        is None
    )


def test_errors_are_counted_by_kind(world: World, registry: CollectorRegistry) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.fake.fail_next("GET", r"/deployments/a/scale$", 503, "ServiceUnavailable")
    world.tick()
    assert registry.get_sample_value("sloscaler_errors_total", {"kind": "transient"}) == 1
    assert registry.get_sample_value("sloscaler_errors_total", {"kind": "conflict"}) == 0


def test_http_endpoints(registry: CollectorRegistry, clock: VirtualClock) -> None:
    ControllerMetrics(registry).set_leader(True)
    health = Health(clock, stale_after_s=60)
    server = MetricsServer(registry, health, host="127.0.0.1", port=0).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(timeout=5) as c:
            assert c.get(url + "/healthz").status_code == 200
            assert c.get(url + "/readyz").status_code == 503  # nothing reconciled yet
            health.beat()
            assert c.get(url + "/readyz").status_code == 200
            clock.advance(61)  # the main loop stopped going round
            assert c.get(url + "/healthz").status_code == 503
            text = c.get(url + "/metrics").text
    finally:
        server.stop()
    assert "sloscaler_leader 1.0" in text


def test_every_metric_is_documented(registry: CollectorRegistry) -> None:
    ControllerMetrics(registry)
    doc = (ROOT / "docs/metrics.md").read_text()
    documented = set(re.findall(r"`(sloscaler_[a-z0-9_]+)`", doc))
    names = set()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        names.add(name)
    missing = names - documented
    assert missing == set()


def test_cost_churn_and_policy_info(world: World, registry: CollectorRegistry) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a", gpusPerReplica=2, startupSeconds=90)]))
    world.demand("p", 20.0, a=2)
    world.tick()

    def value(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {**LABELS, **extra})

    assert value("sloscaler_desired_replicas") == 6
    assert value("sloscaler_pool_gpus") == 4  # 2 current replicas × 2 GPUs
    assert value("sloscaler_pool_cost_per_hour") == pytest.approx(16.0)  # 4 GPUs × 4.0
    assert value("sloscaler_startup_seconds") == 90
    assert value("sloscaler_scale_events_total", direction="up") == 0  # nothing before
    assert value("sloscaler_scale_events_total", direction="down") == 0
    info = {"namespace": NS, "policy": "p", "model": "llama"}
    assert registry.get_sample_value("sloscaler_policy_info", info) == 1
    assert value("sloscaler_pool_info", target="a") == 1  # the pool's Deployment

    world.demand("p", 4.0, a=6)
    world.tick()
    assert value("sloscaler_pool_gpus") == 12  # the direct write took the pool to 6
    desired = value("sloscaler_desired_replicas")
    assert desired is not None
    assert desired != 6
    up, down = (1, 0) if desired > 6 else (0, 1)
    assert value("sloscaler_scale_events_total", direction="up") == up
    assert value("sloscaler_scale_events_total", direction="down") == down

    world.custom.delete_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )
    world.tick()
    assert value("sloscaler_pool_gpus") is None
    assert value("sloscaler_scale_events_total", direction="up") is None
    assert registry.get_sample_value("sloscaler_policy_info", info) is None
    assert value("sloscaler_pool_info", target="a") is None
