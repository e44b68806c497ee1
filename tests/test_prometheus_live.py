"""The controller's Prometheus source against a real Prometheus scraping live simulated pods.

A small simulation (Llama-3-8B on two H100 pods and one H200 pod, Poisson arrivals) advances
paced to the wall clock in a thread; every pod and the gateway serve ``/metrics`` on their own
loopback port (``simulator.metrics.MetricsHTTPServer``), and a real ``prometheus`` scrapes them
every second. Its scrape config applies the relabelings of the PodMonitor shipped in
``deploy/base/monitoring.yaml`` to the labels Kubernetes service discovery would give a pod
(``__meta_kubernetes_namespace``, ``__meta_kubernetes_pod_label_sloscaler_dev_pool``), so the
series carry the ``namespace`` and ``pool`` labels the source joins on.

Once Prometheus holds a full 10 s window of samples the simulation is frozen: the pods' values
stop changing, so after the next scrape the source must read exactly what they export (running
and waiting totals, mean KV usage) and rates consistent with the traffic the pods counted over
the window (within 25 %: ``rate`` extrapolates up to one scrape interval at the window's start).
Every target must be up with no scrape error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from autoscaler.k8s.sources import PolicyRef, PoolRef
from autoscaler.prometheus_source import (
    HttpPrometheusClient,
    PrometheusMetricsSource,
    PrometheusSourceConfig,
)
from simulator.cluster import Cluster
from simulator.metrics import GatewayMetrics, MetricsHTTPServer, VllmMetrics
from simulator.metrics.vllm import MetricsSnapshot
from simulator.runner import run_scenario
from simulator.scenario import Scenario
from tests.prometheus_harness import requires_prometheus, running_prometheus

pytestmark = requires_prometheus

ROOT = Path(__file__).resolve().parents[1]
NS = "llm"
MODEL = "llama-3-8b"
WINDOW_S = 10.0
PACE_STEP_S = 0.05  # simulated seconds between pacing checks
LIMIT_S = 45.0  # bound on every wait


class _StoppedError(Exception):
    """Raised from the pacing hook to end the simulation."""


@dataclass
class LivePods:
    """The simulation thread and what it shares with the test."""

    server: MetricsHTTPServer
    pools: dict[str, str] = field(default_factory=dict)  # pod → pool
    pods: dict[str, VllmMetrics] = field(default_factory=dict)
    gateway: GatewayMetrics | None = None
    history: list[tuple[float, dict[str, MetricsSnapshot], int]] = field(default_factory=list)
    registered: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    freeze: threading.Event = field(default_factory=threading.Event)
    frozen: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)
    start: float = 0.0  # monotonic time of simulated time 0

    def hook(self, t: float, cluster: Cluster) -> None:
        if not self.registered.is_set():
            for m in cluster.metric_sources():
                if isinstance(m, VllmMetrics):
                    labels = dict(m.identity)
                    self.pods[labels["pod"]] = m
                    self.pools[labels["pod"]] = labels["pool"]
                    self.server.register(labels["pod"], m)
                else:
                    self.gateway = m
                    self.server.register("gateway", m)
            self.registered.set()
            if not self.go.wait(LIMIT_S):
                raise _StoppedError
            self.start = time.monotonic() - t
        # pace: simulated time t happens at wall time start + t
        while (ahead := self.start + t - time.monotonic()) > 0:
            if self.stop.wait(ahead):
                raise _StoppedError
        assert self.gateway is not None
        gw = self.gateway
        offered = gw.requests_total + sum(gw.request_errors.values()) + gw.queue_size
        self.history.append((time.time(), {p: m.snapshot() for p, m in self.pods.items()}, offered))
        if self.freeze.is_set():
            self.frozen.set()
            self.stop.wait(LIMIT_S)  # the metrics stay as they are until the test is done
            raise _StoppedError

    def run(self, scenario: Scenario) -> None:
        try:
            run_scenario(scenario, sample_hooks=((PACE_STEP_S, self.hook),))
        except _StoppedError:
            pass
        except BaseException as e:  # reported by the test
            self.error.append(e)
        finally:
            self.registered.set()
            self.frozen.set()


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "prometheus-live",
            "seed": 11,
            "trace": {
                "generate": {
                    "kind": "poisson",
                    "rate_rps": 12,
                    "duration_s": 120,
                    "lengths": {"mean_input_tokens": 800, "mean_output_tokens": 300},
                }
            },
            "slo": {"ttft_ms": 500, "tpot_ms": 50},
            "pools": [
                {"name": "h100", "model": MODEL, "accelerator": "h100", "replicas": 2},
                {"name": "h200", "model": MODEL, "accelerator": "h200", "replicas": 1},
            ],
            "gateway": {"scorer": "least-load"},
        }
    )


def _pod_monitor_relabelings() -> list[dict[str, Any]]:
    """The shipped PodMonitor's relabelings as Prometheus ``relabel_configs``."""
    docs = yaml.safe_load_all((ROOT / "deploy/base/monitoring.yaml").read_text())
    (monitor,) = [d for d in docs if d and d["kind"] == "PodMonitor"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{names.get(k, k): v for k, v in r.items()} for r in endpoint["relabelings"]]


def _config(live: LivePods) -> str:
    pods = [
        {
            "targets": [f"127.0.0.1:{live.server.port_for(pod)}"],
            "labels": {
                "__meta_kubernetes_namespace": NS,
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_pod_label_sloscaler_dev_pool": pool,
            },
        }
        for pod, pool in live.pools.items()
    ]
    gateway = [
        {"targets": [f"127.0.0.1:{live.server.port_for('gateway')}"], "labels": {"namespace": NS}}
    ]
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "vllm",
                    "static_configs": pods,
                    "relabel_configs": _pod_monitor_relabelings(),
                },
                {"job_name": "epp", "static_configs": gateway},
            ],
        }
    )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LivePods, str]]:
    server = MetricsHTTPServer()
    pods = LivePods(server)
    thread = threading.Thread(target=pods.run, args=(_scenario(),), daemon=True)
    thread.start()
    try:
        assert pods.registered.wait(LIMIT_S)
        assert not pods.error, pods.error
        server.start()
        with running_prometheus(tmp_path / "data", tmp_path, _config(pods)) as url:
            pods.go.set()
            yield pods, url
    finally:
        pods.go.set()
        pods.stop.set()
        thread.join(LIMIT_S)
        server.stop()


def _poll(check: Any, what: str) -> Any:
    """``check()`` until it returns something truthy, for at most ``LIMIT_S`` (bounded polling:
    Prometheus scrapes on its own schedule, there is nothing to wait on)."""
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        threading.Event().wait(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    resp.raise_for_status()
    return list(resp.json()["data"]["result"])


def _targets(url: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/api/v1/targets", timeout=5)
    resp.raise_for_status()
    return list(resp.json()["data"]["activeTargets"])


def _at(history: list[tuple[float, dict[str, MetricsSnapshot], int]], t: float) -> int:
    """Index of the last history entry at or before wall time ``t``."""
    return max(i for i, (when, _, _) in enumerate(history) if when <= t)


def _all_up(url: str, n: int) -> bool:
    targets = _targets(url)
    return len(targets) == n and all(t["health"] == "up" for t in targets)


def _full_window(url: str, pods: int) -> bool:
    """Every pod has a sample for each second of the last window."""
    expr = f'count_over_time(vllm:num_requests_running{{namespace="{NS}"}}[{WINDOW_S:g}s])'
    return sum(1 for s in _query(url, expr) if float(s["value"][1]) >= WINDOW_S - 1) == pods


def _scraped_after(url: str, t: float, pods: int) -> bool:
    """Every pod and the gateway have a sample taken after ``t`` (one per selector, since
    ``timestamp()`` reads sample times of plain selectors only)."""
    newest = [
        float(s["value"][1])
        for expr in (
            "timestamp(vllm:num_requests_running)",
            "timestamp(inference_objective_request_total)",
        )
        for s in _query(url, expr)
    ]
    return len(newest) == pods + 1 and min(newest) > t


def test_prometheus_scrapes_live_pods_and_the_source_reads_them(live: tuple[LivePods, str]) -> None:
    pods, url = live
    n_targets = len(pods.pods) + 1
    assert n_targets == 4
    _poll(lambda: _all_up(url, n_targets), "every target up")
    _poll(lambda: _full_window(url, len(pods.pods)), "a full window of samples")
    pods.freeze.set()
    assert pods.frozen.wait(LIMIT_S)
    assert not pods.error, pods.error
    frozen_at = pods.history[-1][0]
    _poll(lambda: _scraped_after(url, frozen_at, len(pods.pods)), "a scrape after the freeze")
    targets = _targets(url)
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")] * n_targets
    pools = {t["labels"]["pool"] for t in targets if t["labels"]["job"] == "vllm"}
    assert pools == {"h100", "h200"}  # set by the PodMonitor's relabelings

    refs = tuple(
        PoolRef(
            NS,
            "live",
            pool,
            MODEL,
            "aggregated",
            pool.upper(),
            "Deployment",
            pool,
            f"app={pool}",
            n,
        )
        for pool, n in (("h100", 2), ("h200", 1))
    )
    policy = PolicyRef(NS, "live", MODEL, refs, 0.5, 0.05)
    client = HttpPrometheusClient(url)
    source = PrometheusMetricsSource(
        client, PrometheusSourceConfig(window_s=WINDOW_S, stale_after_s=5.0)
    )
    now = time.time()
    obs = source.observe([policy], now)[policy.key]
    client.close()
    assert source.faults == {}
    final = pods.history[-1][1]
    start = pods.history[_at(pods.history, now - WINDOW_S)]
    deviations: list[float] = []
    for pool in ("h100", "h200"):
        window = obs.loads[pool]
        assert window is not None, pool
        members = [p for p, q in pods.pools.items() if q == pool]
        # gauges: exactly the frozen values the pods export
        assert window.running == sum(final[p].num_requests_running for p in members)
        assert window.waiting == sum(final[p].num_requests_waiting for p in members)
        assert window.kv_usage == pytest.approx(
            sum(final[p].kv_cache_usage_perc for p in members) / len(members), rel=1e-9
        )
        assert window.kv_usage > 0
        # rates: what the pods counted over the window
        finished = sum(final[p].finished_requests - start[1][p].finished_requests for p in members)
        generated = sum(final[p].generation_tokens - start[1][p].generation_tokens for p in members)
        assert finished > 20, pool
        assert window.request_rps == pytest.approx(finished / WINDOW_S, rel=0.25), pool
        deviations.append(window.request_rps / (finished / WINDOW_S) - 1)
        assert window.generation_tokens_rps == pytest.approx(generated / WINDOW_S, rel=0.25)
        assert window.ttft_p90_s is not None
        assert window.itl_p90_s is not None
        assert window.mean_output_tokens is not None
        assert window.mean_output_tokens > 0
    offered = pods.history[-1][2] - start[2]
    assert obs.demand.arrival_rps is not None
    assert obs.demand.arrival_rps == pytest.approx(offered / WINDOW_S, rel=0.25)
    deviations.append(obs.demand.arrival_rps / (offered / WINDOW_S) - 1)
    print(f"\nlive: request and demand rates vs the pods' counts: {deviations}")
