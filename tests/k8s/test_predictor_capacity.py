"""The controller's capacity from the real predictor service, served by uvicorn on a loopback
port: answers equal ``POST /capacity``'s, the cache bounds the requests of a tick, every fault
falls back to the ``--capacity`` table with its counted reason and ``ModelReady=False``, and the
controller on the fake API server sizes a pool from the predictor and sets ``ModelReady``.

Two services: ``learned`` holds a window model for H100 (fitted here on toy M/M/1 windows, as
:mod:`tests.predictor.test_predictor_window_models` does) and an analytic profile for L40S;
``bare`` (built by ``predictor.cli.build_service``) has no window model and the L40S profile
only, so H100 gets a 503 ``NoModel`` and L40S the analytic fallback.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from kubernetes import client
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.clock import VirtualClock
from autoscaler.controller_metrics import ControllerMetrics
from autoscaler.k8s.fake_apiserver import FakeApiServer, make_deployment
from autoscaler.k8s.sources import FixedLatencyModel, PolicyRef, PoolRef
from autoscaler.predictor_capacity import (
    HttpPredictorClient,
    PredictorCapacityConfig,
    PredictorCapacitySource,
    PredictorFault,
    anchored_latency,
    on_grid,
)
from policies.types import DemandMix, PoolSnapshot, Role, SLOTarget
from predictor.cli import build_service
from predictor.clock import FixedClock
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WindowField
from predictor.service import PredictorService, ProfilePayload, ServiceConfig, create_app
from predictor.window_models import fit_window_model
from predictor.window_registry import WindowModelRegistry
from tests.fault_server import Answer, FaultServer, serve_fault
from tests.k8s.conftest import START
from tests.k8s.world import CAPACITY, NS, World, policy, pool, write_kubeconfig
from tests.window_data import h100_pool_windows, window_features

F = WindowField
LOADED = START - 600.0  # the learned service loaded its window model 10 minutes before START
SLO = SLOTarget(0.5, 0.05)  # the objectives of tests.k8s.world.policy
MIX = DemandMix(1024.0, 256.0, 0.0)  # steady_load's mix: asked as (1000, 260, 0.0)
PROFILE: dict[str, Any] = {
    "prefill_tokens_per_s": 7_000.0,
    "itl_base_ms": 14.0,
    "itl_per_seq_ms": 0.3,
    "kv_capacity_tokens": 120_000.0,
    "max_num_seqs": 64,
}


def _ask(accelerator: str, isl: float = 1000, osl: float = 260, hit: float = 0.0) -> dict[str, Any]:
    return {
        "accelerator": accelerator,
        "role": "aggregated",
        "isl": isl,
        "osl": osl,
        "prefix_hit": hit,
        "slo_ttft_ms": 500.0,
        "slo_tpot_ms": 50.0,
    }


# --- the services -------------------------------------------------------------------------------


def _windows(n: int, seed: int) -> WindowDataset:
    """H100 pods as M/M/1 prefill queues saturating at 30 req/s at ISL 1000."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.05, 0.95, n) * 30.0
    isl = rng.uniform(800, 1200, n)
    osl = rng.uniform(150, 300, n)
    prefix = rng.uniform(0, 0.3, n)
    mu = 30.0 * 1000.0 / (isl * (1 - 0.5 * prefix))
    rho = np.minimum(rate / mu, 0.98)
    ttft = 0.03 + np.log(10.0) / (mu * (1 - rho))
    itl = 0.008 * (1 + 1.5 * rho)
    running = rate * (ttft + osl * itl)
    features = window_features(
        rate, isl, osl, running=running, waiting=rho**2 / (1 - rho), kv_tokens=isl + osl / 2,
        prefix=prefix,
    )  # fmt: skip
    return h100_pool_windows(features, ttft, itl, rng, accelerator="H100")


class Served:
    """An ASGI app on a loopback port, in a thread. The socket listens before uvicorn starts, so
    a request made at once waits in the backlog instead of failing."""

    def __init__(self, app_: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app_, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PredictorService]]:
    data = _windows(300, seed=1)
    root = tmp_path_factory.mktemp("windows")
    WindowModelRegistry(root).publish(fit_window_model(data), data, created_at=LOADED - 3600)
    service = PredictorService(
        ServiceConfig(profiles={"L40S": ProfilePayload(**PROFILE).profile("L40S")}),
        window_registry=WindowModelRegistry(root),
        clock=FixedClock(LOADED),
    )
    artifact, _ = service.reload_windows()
    assert artifact is not None
    served = Served(create_app(service))
    yield served.url, service
    served.stop()


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PredictorService]]:
    tmp = tmp_path_factory.mktemp("bare")
    profiles = tmp / "profiles.json"
    profiles.write_text(json.dumps({"L40S": PROFILE}))
    service = build_service(tmp / "models", profiles=profiles)
    served = Served(create_app(service))
    yield served.url, service
    served.stop()


def _served(service: PredictorService, endpoint: str) -> float:
    """Requests the service answered on ``endpoint`` (its own counter, every status code)."""
    return sum(
        s.value
        for metric in service.metrics_registry.collect()
        if metric.name == "sloscaler_predictor_http_requests"
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["endpoint"] == endpoint
    )


def _pool(name: str, accelerator: str, role: Role = "aggregated") -> PoolSnapshot:
    return PoolSnapshot(name, "llama", role, accelerator, 1, 4.0, 1, 1, 120.0, None)


def _ref(name: str, pools: list[PoolSnapshot]) -> PolicyRef:
    refs = tuple(
        PoolRef(NS, name, p.name, "llama", p.role, p.accelerator, "Deployment", p.name, "")
        for p in pools
    )
    return PolicyRef(NS, name, "llama", refs, SLO.ttft_s, SLO.tpot_s)


def _source(
    url: str, clock: VirtualClock, timeout_s: float = 5.0, registry: CollectorRegistry | None = None
) -> PredictorCapacitySource:
    sink = ControllerMetrics(registry) if registry is not None else None
    return PredictorCapacitySource(
        HttpPredictorClient(url, timeout_s=timeout_s),
        FixedLatencyModel(CAPACITY),
        clock,
        on_fault=sink.capacity_source_fault if sink is not None else None,
    )


# --- the formulas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mix", "grid"),
    [
        (DemandMix(1024, 187, 0.23), DemandMix(1000, 190, 0.25)),
        (DemandMix(1049, 256, 0.024), DemandMix(1000, 260, 0.0)),
        (DemandMix(0, 0.4, 1.2), DemandMix(0, 1, 1.0)),
        (DemandMix(9.46, 12_345, 0.5), DemandMix(9.5, 12_000, 0.5)),
    ],
)
def test_the_mix_grid(mix: DemandMix, grid: DemandMix) -> None:
    assert on_grid(mix) == grid


@pytest.mark.parametrize(
    ("rps", "latency"),
    [(0.0, 0.225), (6.0, 0.3), (12.0, 0.45), (18.0, 0.9), (24.0, math.inf), (30.0, math.inf)],
)
def test_latency_anchored_at_capacity_worked_example(rps: float, latency: float) -> None:
    assert anchored_latency(0.45, 12.0, rps) == pytest.approx(latency)
    assert anchored_latency(0.45, 0.0, rps) == math.inf


# --- answers ------------------------------------------------------------------------------------


def test_learned_and_fallback_answers_equal_the_service(
    learned: tuple[str, PredictorService], clock: VirtualClock
) -> None:
    url, _service = learned
    source = _source(url, clock)
    h100, l40s = _pool("a", "H100"), _pool("b", "L40S")
    model = source.capacity_model(_ref("p", [h100]))
    cap = model.capacity(h100, MIX, SLO)
    body = httpx.post(f"{url}/capacity", json=_ask("H100")).json()
    assert body["source"] == "learned"
    assert 10.0 < body["rate_rps"] < 30.0  # the toy pod saturates at 30 req/s, TTFT ≤ 500 ms
    assert cap.rps == body["rate_rps"]
    assert cap.source == "learned"
    at = body["at_capacity"]
    assert cap.ttft_p90_s == pytest.approx(at["ttft_ms"] / 1000)
    assert cap.tpot_p90_s == pytest.approx(at["tpot_ms"] / 1000)
    assert model.predict(h100, MIX, cap.rps) == pytest.approx((cap.ttft_p90_s, cap.tpot_p90_s))
    half = model.predict(h100, MIX, cap.rps / 2)
    assert half == pytest.approx((cap.ttft_p90_s / 1.5, cap.tpot_p90_s / 1.5))
    status = source.model_status(_ref("p", [h100]))
    assert (status.ready, status.reason) == (True, "ModelTrained")
    assert status.age_s == pytest.approx(600.0)  # from /status → window_models.last_model_load
    assert status.coverage is None  # the service reports none for window models
    # L40S has no window model: the service's analytic fallback answers, ModelReady=False
    model = source.capacity_model(_ref("q", [h100, l40s]))
    model.capacity(h100, MIX, SLO)
    fallback = model.capacity(l40s, MIX, SLO)
    body = httpx.post(f"{url}/capacity", json=_ask("L40S")).json()
    assert (body["source"], body["fallback_model"]) == ("fallback", "analytic")
    assert fallback.rps == body["rate_rps"] != CAPACITY["L40S"]
    assert fallback.source == "fallback"
    status = source.model_status(_ref("q", [h100, l40s]))
    assert (status.ready, status.reason) == (False, "UnknownSegment")
    assert status.message.startswith("pool b: the predictor's analytic fallback")
    assert source.faults == {}


def test_without_a_window_model_the_fallbacks_answer(
    bare: tuple[str, PredictorService], clock: VirtualClock
) -> None:
    url, service = bare
    registry = CollectorRegistry()
    source = _source(url, clock, registry=registry)
    h100, l40s, ep = _pool("a", "H100"), _pool("b", "L40S"), _pool("c", "H100", "expert-parallel")
    ref = _ref("p", [h100, l40s, ep])
    model = source.capacity_model(ref)
    asked = _served(service, "/capacity")
    # H100: neither a window model nor a profile → 503 NoModel → the --capacity table
    assert httpx.post(f"{url}/capacity", json=_ask("H100")).status_code == 503
    table = model.capacity(h100, MIX, SLO)
    assert (table.rps, table.source) == (CAPACITY["H100"], "fallback")
    assert source.faults == {PredictorFault.NOT_READY: 1}
    errors = "sloscaler_capacity_source_errors_total"
    assert registry.get_sample_value(errors, {"reason": "not_ready"}) == 1
    # L40S: the profile → the service's analytic fallback
    body = httpx.post(f"{url}/capacity", json=_ask("L40S")).json()
    analytic = model.capacity(l40s, MIX, SLO)
    assert (body["source"], body["not_ready"]["reason"]) == ("fallback", "NoModel")
    assert analytic.rps == body["rate_rps"]
    # expert-parallel: the service has no such role, the table answers without asking
    assert model.capacity(ep, MIX, SLO).rps == CAPACITY["H100"]
    assert _served(service, "/capacity") == asked + 4  # 2 here, 2 by the source
    status = source.model_status(ref)
    assert (status.ready, status.reason) == (False, "NoModel")
    assert status.message.startswith("pool a: the predictor cannot answer")
    assert "the --capacity table answers 4 rps per replica" in status.message
    assert "and 2 more pools without a learned model" in status.message
    # no capacity asked (e.g. no demand data): ModelReady from /status's segments
    quiet = source.capacity_model(_ref("r", [l40s]))
    assert not quiet.answers
    status = source.model_status(_ref("r", [l40s]))
    assert (status.ready, status.reason) == (False, "NoModel")


def test_the_cache_bounds_requests_per_tick(
    learned: tuple[str, PredictorService], clock: VirtualClock
) -> None:
    url, service = learned
    source = _source(url, clock)
    # 100 pools on 2 accelerators in 10 policies; 3 mixes, each jittered inside its grid cell
    mixes = (DemandMix(1024, 256, 0.0), DemandMix(2000, 128, 0.1), DemandMix(512, 512, 0.3))
    policies = []
    for i in range(10):
        pools = [_pool(f"p{i}-{j}", ("H100", "L40S")[j % 2]) for j in range(10)]
        base = mixes[i % 3]
        mix = DemandMix(
            base.input_tokens + 0.3 * i, base.output_tokens + 0.1 * i, base.prefix_hit_ratio
        )
        policies.append((_ref(f"p{i}", pools), pools, mix))

    def tick() -> float:
        before = _served(service, "/capacity")
        for ref, pools, mix in policies:
            model = source.capacity_model(ref)
            for p in pools:
                model.capacity(p, mix, SLO)
        return _served(service, "/capacity") - before

    assert tick() == 2 * 3  # one request per (accelerator, mix)
    assert source.requests == 6
    clock.advance(15)
    assert tick() == 0  # every answer fresh
    clock.advance(44)
    assert tick() == 0  # 59 s: still within the TTL of 60 s
    clock.advance(1)
    assert tick() == 6  # expired: asked again, once per key
    assert source.requests == 12
    assert source.faults == {}


# --- faults -------------------------------------------------------------------------------------


_WRONG = json.dumps({"rate_rps": -1, "source": "learned", "limited_by": "ttft"}).encode()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("unreachable", PredictorFault.UNREACHABLE),
        ("timeout", PredictorFault.TIMEOUT),
        ("http-500", PredictorFault.SERVER_ERROR),
        ("http-404", PredictorFault.REJECTED),
        ("not-json", PredictorFault.BAD_RESPONSE),
        ("wrong-schema", PredictorFault.BAD_RESPONSE),
    ],
)
def test_every_fault_falls_back_to_the_table_counted(
    fault: str,
    reason: PredictorFault,
    fake: FakeApiServer,
    clock: VirtualClock,
    api: client.ApiClient,
    fault_server: Callable[[Answer], FaultServer],
) -> None:
    answers: dict[str, Answer] = {
        "http-500": lambda _b: (500, b"internal error"),
        "http-404": lambda _b: (404, b'{"detail": "Not Found"}'),
        "not-json": lambda _b: (200, b"<html>a proxy's login page</html>"),
        "wrong-schema": lambda _b: (200, _WRONG),
    }
    url, server = serve_fault(fault, answers, fault_server)
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    source = PredictorCapacitySource(
        HttpPredictorClient(url, timeout_s=0.2 if fault == "timeout" else 5.0),
        FixedLatencyModel(CAPACITY),
        clock,
        PredictorCapacityConfig(retry_after_s=15.0),
        on_fault=metrics.capacity_source_fault,
    )
    world = World(fake, clock, api, sink=metrics, capacity=source)
    world.deploy("a", 2)
    world.deploy("b", 1)
    world.create(policy("p", [pool("a"), pool("b", "L40S")]))
    world.demand("p", 20.0, a=2, b=1)
    world.tick()  # the first fault: the table answers, kept 15 s (and 15 s without asking)
    world.tick()  # 15 s later: asked again, fails again
    assert source.faults == {
        reason: 2 if reason in (PredictorFault.UNREACHABLE, PredictorFault.TIMEOUT) else 4
    }
    errors = "sloscaler_capacity_source_errors_total"
    assert registry.get_sample_value(errors, {"reason": reason.value}) == sum(
        source.faults.values()
    )
    others = {f for f in PredictorFault if f is not reason}
    assert all(registry.get_sample_value(errors, {"reason": f.value}) == 0 for f in others)
    status = world.status("p")
    assert {p["name"]: p["capacityRps"] for p in status["pools"]} == {"a": 4.0, "b": 2.0}
    model_ready = world.condition("p", "ModelReady")
    assert (model_ready["status"], model_ready["reason"]) == ("False", "PredictorUnavailable")
    assert f"predictor {reason.value}" in model_ready["message"]
    assert (
        registry.get_sample_value(
            "sloscaler_model_ready",
            {
                "namespace": NS,
                "policy": "p",
                "pool": "a",
                "accelerator": "H100",
                "role": "aggregated",
            },
        )
        == 0
    )
    if server is not None:
        assert server.requests == sum(source.faults.values())


# --- the controller -----------------------------------------------------------------------------


def test_the_controller_sizes_a_pool_from_the_predictor(
    learned: tuple[str, PredictorService],
    fake: FakeApiServer,
    clock: VirtualClock,
    api: client.ApiClient,
) -> None:
    url, _service = learned
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    source = PredictorCapacitySource(
        HttpPredictorClient(url),
        FixedLatencyModel(CAPACITY),
        clock,
        on_fault=metrics.capacity_source_fault,
    )
    world = World(fake, clock, api, sink=metrics, capacity=source)
    world.deploy("a", 1)
    world.deploy("b", 1)
    world.create(policy("learned", [pool("a")]))
    world.create(policy("mixed", [pool("b", "L40S")]))
    world.demand("learned", 100.0, a=1)
    world.demand("mixed", 10.0, b=1)
    world.tick()
    h100 = httpx.post(f"{url}/capacity", json=_ask("H100")).json()["rate_rps"]
    l40s = httpx.post(f"{url}/capacity", json=_ask("L40S")).json()["rate_rps"]
    (a,) = world.status("learned")["pools"]
    assert a["capacityRps"] == pytest.approx(h100)
    assert a["desiredReplicas"] == math.ceil(a["demandRps"] / (h100 * 0.9))  # headroom 0.1
    assert a["desiredReplicas"] > 1
    assert world.replicas("a") == a["desiredReplicas"]
    assert 0 < a["predictedTTFTP90Ms"] <= 500
    ready = world.condition("learned", "ModelReady")
    assert (ready["status"], ready["reason"]) == ("True", "ModelTrained")
    labels = {"namespace": NS, "policy": "learned", "pool": "a"}
    labels |= {"accelerator": "H100", "role": "aggregated"}
    assert registry.get_sample_value("sloscaler_model_ready", labels) == 1
    assert registry.get_sample_value("sloscaler_model_age_seconds", labels) == pytest.approx(600)
    (b,) = world.status("mixed")["pools"]
    assert b["capacityRps"] == pytest.approx(l40s)
    not_ready = world.condition("mixed", "ModelReady")
    assert (not_ready["status"], not_ready["reason"]) == ("False", "UnknownSegment")
    # the answers this tick's decision used, not a guess from /status
    assert not_ready["message"].startswith("pool b: the predictor's analytic fallback answers")
    assert source.faults == {}


# --- sloscaler run --predictor-url --------------------------------------------------------------


def test_run_once_asks_the_predictor_url(
    tmp_path: Path,
    learned: tuple[str, PredictorService],
    fake: FakeApiServer,
    api: client.ApiClient,
) -> None:
    url, service = learned
    fake.store.put(make_deployment("a", NS, 2, {"app": "a"}))
    fake.store.put(policy("p", [pool("a")]))
    kubeconfig = write_kubeconfig(tmp_path, fake.url)
    before = _served(service, "/status")
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--once",
            "--no-leader-elect",
            "--kubeconfig",
            str(kubeconfig),
            "--predictor-url",
            url,
            "--predictor-timeout",
            "2",
            "--log-level",
            "warning",
        ],
    )
    assert result.exit_code == 0, result.output
    # no metrics source: the pool holds and no capacity is asked; ModelReady comes from /status
    assert _served(service, "/status") == before + 1
    obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["ModelReady"]["status"] == "True"
    assert conditions["ModelReady"]["reason"] == "ModelTrained"
    assert "window model v000001 is ready" in conditions["ModelReady"]["message"]
    assert obj["status"]["pools"][0]["desiredReplicas"] == 2
