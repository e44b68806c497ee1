"""A small cluster for controller tests: policies, workloads and a route in the fake API server,
an in-memory metrics source and fixed capacity (H100: 4 rps per replica, L40S: 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.external_metrics import DesiredReplicasBoard
from autoscaler.k8s.client import KubeCluster
from autoscaler.k8s.controller import Controller, ControllerConfig, ControllerMetricsSink
from autoscaler.k8s.fake_apiserver import FakeApiServer, make_deployment
from autoscaler.k8s.fake_crds import httproute
from autoscaler.k8s.sources import (
    CapacitySource,
    FixedLatencyModel,
    InMemoryMetricsSource,
    ModelStatus,
    StaticCapacity,
    steady_load,
)

G, V, P = "sloscaler.dev", "v1alpha1", "slopolicies"
NS = "llm"
CAPACITY = {"H100": 4.0, "L40S": 2.0}


def pool(name: str, accelerator: str = "H100", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "role": "aggregated",
        "accelerator": accelerator,
        "costPerGpuHour": 4.0 if accelerator == "H100" else 1.2,
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": 1,
        "maxReplicas": 10,
        **extra,
    }


def policy(
    name: str, pools: list[dict[str, Any]], mode: str = "direct", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "SLOPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": "llama",
            "objectives": {"ttftP90Ms": 500, "tpotP90Ms": 50},
            "mode": mode,
            "pools": pools,
            "behavior": {"scaleDownStabilizationSeconds": 0},
            **spec,
        },
    }


@dataclass
class World:
    fake: FakeApiServer
    clock: VirtualClock
    api: client.ApiClient
    source: InMemoryMetricsSource = field(default_factory=InMemoryMetricsSource)
    model_ready: bool = True
    sink: ControllerMetricsSink | None = None
    capacity: CapacitySource | None = None  # default: the fixed CAPACITY, model ready

    def __post_init__(self) -> None:
        self.cluster = KubeCluster(self.api)
        self.board = DesiredReplicasBoard(self.clock, stale_after_s=60)
        status = ModelStatus(True, "ModelTrained", "learned model ready", 3600.0, 0.9)
        self.capacity = self.capacity or StaticCapacity(FixedLatencyModel(CAPACITY), status)
        self.restart()
        self.custom = client.CustomObjectsApi(self.api)
        self.apps = client.AppsV1Api(self.api)

    def restart(self) -> None:
        """A new controller process (a restart, a new leader): nothing kept in memory."""
        assert self.capacity is not None
        self.controller = Controller(
            self.cluster,
            self.source,
            self.capacity,
            self.clock,
            board=self.board,
            config=ControllerConfig(tick_s=15.0, identity="test"),
            sink=self.sink,
        )

    def deploy(self, name: str, replicas: int) -> None:
        self.fake.store.put(make_deployment(name, NS, replicas, {"app": name}))

    def create(self, obj: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(G, V, NS, P, obj)

    def route(self, name: str, backends: list[str]) -> None:
        self.fake.store.put(httproute(name, NS, backends))

    def demand(self, policy_name: str, rps: float | None, queued: int = 0, **ready: int) -> None:
        self.source.set_demand(NS, policy_name, rps, queued)
        for pool_name, n in ready.items():
            self.source.set_load(NS, policy_name, pool_name, steady_load(rps or 0.0, n))

    def tick(self, advance: float = 15.0) -> Any:
        self.fake.store.run_workload_controllers()
        report = self.controller.tick()
        self.clock.advance(advance)
        self.fake.store.run_workload_controllers()
        return report

    def replicas(self, name: str) -> int:
        scale: Any = self.apps.read_namespaced_deployment_scale(name, NS)
        return int(scale.spec.replicas)

    def status(self, name: str) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(G, V, NS, P, name)
        return dict(obj.get("status", {}))

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        for c in self.status(name).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        raise KeyError(type_)

    def events(self) -> list[Any]:
        return list(client.CoreV1Api(self.api).list_namespaced_event(NS).items)


def write_kubeconfig(tmp_path: Path, url: str) -> Path:
    """A kubeconfig in ``tmp_path`` whose only context points at the fake API server ``url``."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "fake",
            }
        )
    )
    return path
