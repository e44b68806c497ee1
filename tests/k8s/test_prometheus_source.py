"""The controller's Prometheus metrics source against a real Prometheus holding a simulated run,
and every fault it must turn into "no data".

A 2-hour simulated run (Llama-3-8B on two H100 pods and one H200 pod under a diurnal load,
≈ 3 s of simulation here) is recorded every 15 s with the simulator's OpenMetrics writer — every
series given ``namespace="llm"`` as Kubernetes service discovery adds it, and ``pool`` (the
simulator's pool name, standing for the ``sloscaler.dev/pool`` pod label) — then backfilled with
promtool and served by a real ``prometheus``. Beside the real pods the recording holds three
injected ones: ``legacy`` (exports vLLM ≤ 0.10's ITL name), ``nan`` (a NaN KV gauge) and
``stale`` (stops reporting after an hour).

Checks: at every minute from 2 min on, the source's window per pool and demand per model equal
the in-memory :class:`~autoscaler.sources.SimulatorMetricsSource`'s over the same snapshots
within 1e-9 relative (query times sit on a scrape, so ``rate`` spans exactly the in-memory
window's two frames), with 12 queries per tick for all pools and policies; ``policies.decide``
gives the same decisions from both; every data fault (absent, NaN, stale) and every client fault
(unreachable, timeout, HTTP 500, HTTP 400, a body that is not JSON, an empty answer, NaN answers)
is counted by reason and makes the controller hold its pools with ``MetricsAvailable=False``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.clock import VirtualClock
from autoscaler.controller_metrics import ControllerMetrics
from autoscaler.k8s.controller import Controller, ControllerConfig
from autoscaler.k8s.fake_apiserver import FakeApiServer, make_deployment
from autoscaler.k8s.sources import (
    QUERIES_PER_TICK as IN_MEMORY_QUERIES_PER_TICK,
)
from autoscaler.k8s.sources import (
    FixedLatencyModel,
    ModelStatus,
    PolicyObservation,
    PolicyRef,
    PoolRef,
    StaticCapacity,
)
from autoscaler.prometheus_source import (
    QUERIES_PER_TICK,
    TICK_FAULTS,
    HttpPrometheusClient,
    MetricsFault,
    PrometheusMetricsSource,
    PrometheusSourceConfig,
    Query,
    SourceQueries,
    bucket_quantile,
    rate_above,
)
from autoscaler.sources import Demand, SimulatorMetricsSource
from policies.decide import decide
from policies.types import (
    ClusterSnapshot,
    Decision,
    LoadWindow,
    ModelSnapshot,
    PolicyConfig,
    PolicyState,
    PoolLimits,
    PoolSnapshot,
    SLOTarget,
)
from predictor.prometheus_queries import LEGACY_ITL_NAME
from simulator.cluster import Cluster
from simulator.control import ClusterView, PodView, PoolView
from simulator.metrics import VllmMetrics
from simulator.metrics.openmetrics import OpenMetricsWriter
from simulator.metrics.samples import FamilySamples, LabelTuple, MetricsSource, SeriesGroup
from simulator.runner import run_scenario
from simulator.scenario import Scenario
from tests.fault_server import Answer, FaultServer, serve_fault
from tests.k8s.world import NS, World, policy, pool, write_kubeconfig
from tests.prometheus_harness import (
    backfill,
    fake_traffic,
    requires_prometheus,
    running_prometheus,
)

pytestmark = requires_prometheus

T0 = 1_750_000_000.0  # the recording's epoch (sample times are seconds from 0)
SCRAPE_S = 15.0
DURATION_S = 7200.0
WINDOW_S = 60.0
MODEL = "llama-3-8b"
OBJECTIVES = (0.05, 0.009)  # p90 TTFT and TPOT, s: near the pods' p90, so windows miss some
STALE_STOP_S = 3600.0  # the stale pod's last sample
FIRST_CHECK_S = 120.0
CHECK_EVERY_S = 60.0
REL_TOL = 1e-9
CAPACITY = {"H100": 3.0, "H200": 4.0}  # rps per replica, for the decision comparison


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "prometheus-source",
            "seed": 5,
            "trace": {
                "generate": {
                    "kind": "diurnal",
                    "min_rps": 1,
                    "max_rps": 6,
                    "period_s": 3600,
                    "duration_s": DURATION_S,
                    "lengths": {"mean_input_tokens": 600, "mean_output_tokens": 120},
                    "prefix": {"groups": 4, "tokens": 256, "fraction": 0.5},
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


# --- recording ----------------------------------------------------------------------------------


class _InNamespace:
    """A metrics source whose every series also carries ``namespace``, as Kubernetes service
    discovery labels what it scrapes."""

    def __init__(self, inner: MetricsSource) -> None:
        self.inner = inner

    def snapshot(self) -> _NamespacedSnapshot:
        return _NamespacedSnapshot(self.inner.snapshot())


@dataclass(frozen=True)
class _NamespacedSnapshot:
    inner: Any

    @property
    def identity(self) -> LabelTuple:
        return tuple(self.inner.identity)

    @property
    def created_s(self) -> float:
        return float(self.inner.created_s)

    def collect(self) -> list[FamilySamples]:
        return [
            FamilySamples(f.family, [_with_namespace(g) for g in f.groups])
            for f in self.inner.collect()
        ]


_RELABELLED: dict[int, tuple[object, LabelTuple, tuple[tuple[str, LabelTuple], ...]]] = {}


def _with_namespace(group: SeriesGroup) -> SeriesGroup:
    """The series with ``namespace`` added; its keys built once, as the source's own are."""
    hit = _RELABELLED.get(id(group.keys))
    if hit is None or hit[0] is not group.keys:  # the layouts share key tuples across snapshots
        ns = (("namespace", NS),)
        hit = (group.keys, ns + group.labels, tuple((n, ns + ls) for n, ls in group.keys))
        _RELABELLED[id(group.keys)] = hit
    return SeriesGroup(hit[1], hit[2], group.values)


def _ghost_view(name: str, metrics: VllmMetrics) -> PoolView:
    return PoolView(
        name=name,
        model=MODEL,
        role="aggregated",
        accelerator="h100",
        gpus_per_replica=1,
        price_per_gpu_hour=4.0,
        min_replicas=1,
        max_replicas=1,
        desired=1,
        pods=(PodView(f"{name}-0", "ready", 0.0, 0.0, metrics),),
        startup_estimate_s=60.0,
    )


Observed = tuple[dict[str, LoadWindow | None], dict[str, Demand]]


@dataclass
class Recording:
    data_dir: Path
    in_memory: dict[float, Observed]  # what SimulatorMetricsSource saw at every scrape


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    root = tmp_path_factory.mktemp("prom-source")
    path = root / "run.om"
    legacy = VllmMetrics(
        "ghost", extra_labels={"pod": "legacy-0", "pool": "legacy"}, itl_name=LEGACY_ITL_NAME
    )
    nan = VllmMetrics("ghost", extra_labels={"pod": "nan-0", "pool": "nan"})
    stale = VllmMetrics("ghost", extra_labels={"pod": "stale-0", "pool": "stale"})
    in_memory_source = SimulatorMetricsSource(WINDOW_S, {MODEL: OBJECTIVES})
    in_memory: dict[float, Observed] = {}
    with OpenMetricsWriter(path) as writer:

        def hook(t: float, cluster: Cluster) -> None:
            for m in (legacy, nan, stale):
                fake_traffic(m, kv=0.25)
            nan.kv_cache_usage_perc = math.nan
            sources: list[MetricsSource] = [*cluster.metric_sources(), legacy, nan]
            if t <= STALE_STOP_S:
                sources.append(stale)
            writer.write([_InNamespace(s) for s in sources], T0 + t)
            view = cluster.view()
            view = ClusterView(view.now, (*view.pools, _ghost_view("legacy", legacy)), view.gateway)
            in_memory[t] = in_memory_source.observe(view)

        run_scenario(_scenario(), sample_hooks=((SCRAPE_S, hook),))
    data = root / "data"
    backfill(path, data)
    return Recording(data, in_memory)


@pytest.fixture(scope="module")
def prometheus_url(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_prometheus(recording.data_dir, tmp_path_factory.mktemp("prom-config")) as url:
        yield url


@pytest.fixture(scope="module")
def prom(prometheus_url: str) -> Iterator[HttpPrometheusClient]:
    c = HttpPrometheusClient(prometheus_url, timeout_s=10.0)
    yield c
    c.close()


@pytest.fixture
def clock() -> VirtualClock:
    """The fake API server's clock starts at the recording's epoch (overrides conftest's)."""
    return VirtualClock(T0)


# --- policies as the controller hands them to the source ---------------------------------------


def _pool_ref(policy_name: str, name: str, accelerator: str, replicas: int | None) -> PoolRef:
    return PoolRef(
        NS, policy_name, name, MODEL, "aggregated", accelerator, "Deployment", name,
        f"app={name}", replicas,
    )  # fmt: skip


def _policy_ref(
    name: str, pools: list[tuple[str, str, int | None]], model: str = MODEL
) -> PolicyRef:
    return PolicyRef(
        NS,
        name,
        model,
        tuple(_pool_ref(name, p, acc, n) for p, acc, n in pools),
        *OBJECTIVES,
    )


MAIN = _policy_ref("main", [("h100", "H100", 2), ("h200", "H200", 1)])
OLD = _policy_ref("old", [("legacy", "H100", 1)])
BROKEN = _policy_ref("broken", [("nan", "H100", 1), ("stale", "H100", 1)])
IDLE = _policy_ref("idle", [("at-zero", "H100", 0), ("gone", "H100", 3)], model="nobody")


def _checks() -> list[float]:
    n = int((DURATION_S - FIRST_CHECK_S) // CHECK_EVERY_S) + 1
    return [FIRST_CHECK_S + CHECK_EVERY_S * k for k in range(n)]


@dataclass
class Observations:
    by_time: dict[float, dict[tuple[str, str], PolicyObservation]]
    source: PrometheusMetricsSource
    seconds_per_tick: float

    def load(self, t: float, policy: PolicyRef, pool: str) -> LoadWindow:
        window = self.by_time[t][policy.key].loads[pool]
        assert window is not None, (t, policy.name, pool)
        return window


@pytest.fixture(scope="module")
def observed(prom: HttpPrometheusClient) -> Observations:
    """The source's observation of every policy at every check, all through one source."""
    source = PrometheusMetricsSource(prom, PrometheusSourceConfig(window_s=WINDOW_S))
    start = time.perf_counter()
    out = {t: dict(source.observe([MAIN, OLD, BROKEN, IDLE], T0 + t)) for t in _checks()}
    return Observations(out, source, (time.perf_counter() - start) / len(out))


# --- parity with the in-memory source ----------------------------------------------------------

_FIELDS = (
    "window_s",
    "request_rps",
    "prompt_tokens_rps",
    "generation_tokens_rps",
    "mean_input_tokens",
    "mean_output_tokens",
    "prefix_hit_ratio",
    "kv_usage",
    "running",
    "waiting",
    "ttft_p90_s",
    "itl_p90_s",
    "ttft_misses",
    "tpot_misses",
)


def _same_window(got: LoadWindow, want: LoadWindow | None, where: str) -> list[float]:
    """Assert equality field by field; the relative deviation of every number compared."""
    assert want is not None, where
    assert got.finished == want.finished, where
    deviations: list[float] = []
    for name in _FIELDS:
        g, w = getattr(got, name), getattr(want, name)
        if w is None:
            assert g is None, (where, name, g)
            continue
        assert g is not None, (where, name)
        assert g == pytest.approx(w, rel=REL_TOL, abs=1e-9), (where, name)
        deviations.append(abs(g - w) / abs(w) if w else abs(g))
    return deviations


def test_windows_and_demand_equal_the_in_memory_source(
    observed: Observations, recording: Recording
) -> None:
    checks = _checks()
    assert len(checks) == 119
    # 12 queries per tick for 4 policies and 7 pools — the in-memory source's declared count
    assert QUERIES_PER_TICK == IN_MEMORY_QUERIES_PER_TICK == 12
    assert observed.source.queries == QUERIES_PER_TICK * len(checks)
    deviations: list[float] = []
    for t in checks:
        loads, demand = recording.in_memory[t]
        for name in ("h100", "h200"):
            got = observed.load(t, MAIN, name)
            deviations += _same_window(got, loads[name], f"{name} at {t:g}s")
        have = observed.by_time[t][MAIN.key].demand
        want = demand[MODEL]
        assert have.arrival_rps is not None
        assert want.arrival_rps is not None
        assert have.arrival_rps == pytest.approx(want.arrival_rps, rel=REL_TOL)
        assert have.queued == want.queued
        deviations.append(abs(have.arrival_rps - want.arrival_rps) / want.arrival_rps)
        old = observed.load(t, OLD, "legacy")
        assert old.tpot_misses is None  # vLLM ≤ 0.10 has no per-request TPOT histogram
        legacy = loads["legacy"]
        assert legacy is not None
        legacy = dataclasses.replace(legacy, tpot_misses=None)
        deviations += _same_window(old, legacy, f"legacy at {t:g}s")
    assert len(deviations) > len(checks) * 3 * 11
    # not trivially equal: the load goes through two day-night cycles, windows miss the SLO
    rates = [observed.load(t, MAIN, "h100").request_rps for t in checks]
    assert max(rates) > 2.5 * min(rates) > 0
    misses = [observed.load(t, MAIN, "h100").ttft_misses for t in checks]
    assert sum(1 for m in misses if m) > len(checks) / 2
    print(
        f"\nparity: {len(deviations)} numbers at {len(checks)} ticks, largest relative deviation "
        f"{max(deviations):.1e}; {QUERIES_PER_TICK} queries per tick, "
        f"{observed.seconds_per_tick * 1000:.1f} ms per tick"
    )


def test_the_quantile_port_equals_promql_histogram_quantile(
    observed: Observations, prom: HttpPrometheusClient
) -> None:
    for t in (1800.0, 5400.0):
        answer = prom.query(
            "histogram_quantile(0.9, sum by (namespace, pool, le) "
            '(rate(vllm:time_to_first_token_seconds_bucket{pool="h100"}[60s])))',
            T0 + t,
        )
        (sample,) = answer
        assert observed.load(t, MAIN, "h100").ttft_p90_s == pytest.approx(sample.value, rel=1e-12)


def test_the_docs_quote_every_query() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs/controller.md").read_text()
    for query, text in SourceQueries(PrometheusSourceConfig()).all().items():
        assert text in doc, query


def test_histogram_math_worked_examples() -> None:
    buckets = [(0.1, 5.0), (0.25, 9.0), (math.inf, 10.0)]
    assert bucket_quantile(0.9, buckets) == pytest.approx(0.25)
    assert bucket_quantile(0.7, buckets) == pytest.approx(0.175)
    assert bucket_quantile(0.99, buckets) == 0.25  # in +Inf: the largest finite bound
    assert math.isnan(bucket_quantile(0.9, [(0.1, 0.0), (math.inf, 0.0)]))
    assert rate_above(0.75, [(0.5, 0.9), (1.0, 1.0), (math.inf, 1.0)]) == pytest.approx(0.05)


def _snapshot(obs: Observed | PolicyObservation, replicas: dict[str, int]) -> ClusterSnapshot:
    loads, demand = (
        (obs.loads, obs.demand) if isinstance(obs, PolicyObservation) else (obs[0], obs[1][MODEL])
    )
    accelerators = {"h100": "H100", "h200": "H200"}
    pools = tuple(
        PoolSnapshot(name, MODEL, "aggregated", acc, 1, 4.0, replicas[name], replicas[name], 120.0,
                     loads[name])
        for name, acc in accelerators.items()
    )  # fmt: skip
    models = (ModelSnapshot(MODEL, demand.arrival_rps, demand.queued),)
    return ClusterSnapshot(pools, models, FixedLatencyModel(CAPACITY))


def test_decide_gives_the_same_decisions_from_both_sources(
    observed: Observations, recording: Recording
) -> None:
    config = PolicyConfig(
        slo={MODEL: SLOTarget(*OBJECTIVES, 0.99)},
        tick_s=CHECK_EVERY_S,
        limits={"h100": PoolLimits(1, 10), "h200": PoolLimits(1, 10)},
        scale_down_window_s=120.0,
    )
    replicas = {"h100": 2, "h200": 1}
    prom_state, memory_state = PolicyState(), PolicyState()
    seen: set[tuple[int, ...]] = set()
    for t in _checks():
        got, prom_state, _ = decide(
            _snapshot(observed.by_time[t][MAIN.key], replicas), prom_state, config, T0 + t
        )
        want, memory_state, _ = decide(
            _snapshot(recording.in_memory[t], replicas), memory_state, config, T0 + t
        )
        assert _summary(got) == _summary(want), t
        replicas = got.replicas()  # the pools follow the decisions
        seen.add(tuple(replicas.values()))
    assert len(seen) >= 3  # the decisions move with the load


def _summary(d: Decision) -> list[tuple[str, int, int, str]]:
    return [(p.pool, p.raw, p.replicas, p.reason.value) for p in d.pools]


# --- data faults --------------------------------------------------------------------------------


def test_absent_nan_and_stale_data_are_counted_never_zero(prom: HttpPrometheusClient) -> None:
    source = PrometheusMetricsSource(prom)
    before_stop = source.observe([BROKEN, IDLE], T0 + STALE_STOP_S)[BROKEN.key]
    assert before_stop.loads["stale"] is not None
    assert before_stop.loads["nan"] is None
    assert source.faults == {
        MetricsFault.NOT_A_NUMBER: 1,  # nan: its KV gauge
        MetricsFault.ABSENT: 2,  # gone (3 replicas, no series) and the demand of "nobody"
    }
    obs = source.observe([BROKEN, IDLE], T0 + STALE_STOP_S + 120)
    assert obs[BROKEN.key].loads == {"nan": None, "stale": None}
    assert source.faults[MetricsFault.STALE] == 1
    # past Prometheus's 5-minute lookback the stale pod has no series at all
    source.observe([BROKEN], T0 + STALE_STOP_S + 600)
    assert source.faults[MetricsFault.ABSENT] == 5
    idle = obs[IDLE.key]
    assert idle.demand == Demand(None, 0)
    at_zero = idle.loads["at-zero"]  # the API server says 0 replicas: evidence of idleness
    assert at_zero is not None
    assert (at_zero.request_rps, at_zero.running, at_zero.finished) == (0.0, 0.0, 0)
    assert idle.loads["gone"] is None  # 3 replicas and no series: absent, not idle


# --- the controller on missing data ------------------------------------------------------------


def _world(
    fake: FakeApiServer,
    clock: VirtualClock,
    api: client.ApiClient,
    source: PrometheusMetricsSource,
    sink: ControllerMetrics,
) -> World:
    world = World(fake, clock, api)
    world.controller = Controller(
        world.cluster,
        source,
        StaticCapacity(
            FixedLatencyModel(CAPACITY), ModelStatus(True, "ModelTrained", "learned", 60.0, 0.9)
        ),
        clock,
        board=world.board,
        config=ControllerConfig(tick_s=15.0, identity="test"),
        sink=sink,
    )
    source.on_fault = sink.metrics_source_fault
    return world


def _deploy_policies(world: World) -> None:
    behavior = {"scaleDownStabilizationSeconds": 0, "idleBeforeZeroSeconds": 15}
    for name, n in (("h100", 5), ("h200", 4), ("nan", 4), ("stale", 4)):
        world.deploy(name, n)
    world.create(
        policy(
            "main",
            [pool("h100", "H100"), pool("h200", "H200")],
            model=MODEL,
            behavior=behavior,
        )
    )
    world.create(
        policy(
            "broken",
            [pool(n, "H100", minReplicas=0, scaleToZero=True) for n in ("nan", "stale")],
            model=MODEL,
            behavior=behavior,
        )
    )


def test_the_controller_sizes_healthy_pools_and_holds_broken_ones(
    fake: FakeApiServer, clock: VirtualClock, api: client.ApiClient, prom: HttpPrometheusClient
) -> None:
    registry = CollectorRegistry()
    source = PrometheusMetricsSource(prom)
    world = _world(fake, clock, api, source, ControllerMetrics(registry))
    _deploy_policies(world)
    clock.set(T0 + STALE_STOP_S + 120)
    for _ in range(3):
        world.tick()
    # main: every window and the demand observed; oversized for ~3.5 rps, so it shrinks
    assert world.condition("main", "MetricsAvailable")["status"] == "True"
    assert world.replicas("h100") + world.replicas("h200") < 9
    # broken: demand known (the same model) but neither pool has a window → nothing shrinks
    cond = world.condition("broken", "MetricsAvailable")
    assert cond["status"] == "False"
    assert "pool nan" in cond["message"]
    assert "pool stale" in cond["message"]
    assert (world.replicas("nan"), world.replicas("stale")) == (4, 4)
    assert {p["reason"] for p in world.status("broken")["pools"]} == {"HoldOnMissingData"}
    assert source.faults == {MetricsFault.NOT_A_NUMBER: 3, MetricsFault.STALE: 3}
    for reason, n in ((MetricsFault.NOT_A_NUMBER, 3), (MetricsFault.STALE, 3)):
        value = registry.get_sample_value(
            "sloscaler_metrics_source_errors_total", {"reason": reason.value}
        )
        assert value == n


# --- client faults ------------------------------------------------------------------------------


def _proxy(
    prometheus_url: str, rewrite: Callable[[dict[str, Any]], None]
) -> Callable[[bytes], tuple[int, bytes]]:
    """Ask the real Prometheus, then rewrite each series of its answer."""

    def answer(body: bytes) -> tuple[int, bytes]:
        resp = httpx.post(
            f"{prometheus_url}/api/v1/query",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        doc = resp.json()
        for series in doc["data"]["result"]:
            rewrite(series)
        doc["data"]["result"] = [s for s in doc["data"]["result"] if s]
        return resp.status_code, json.dumps(doc).encode()

    return answer


def _nan(series: dict[str, Any]) -> None:
    series["value"][1] = "NaN"


def _drop(series: dict[str, Any]) -> None:
    series.clear()


_ERROR = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode()


@pytest.mark.parametrize(
    ("fault", "reason", "per_tick"),
    [
        ("unreachable", MetricsFault.UNREACHABLE, 1),
        ("timeout", MetricsFault.TIMEOUT, 1),
        ("http-500", MetricsFault.SERVER_ERROR, 1),
        ("http-400", MetricsFault.REJECTED, 1),
        ("not-json", MetricsFault.BAD_RESPONSE, 1),
        ("empty", MetricsFault.ABSENT, 6),  # 4 pools + 2 models, each absent
        ("nan", MetricsFault.NOT_A_NUMBER, 6),
    ],
)
def test_every_client_fault_is_counted_and_the_controller_holds(
    fault: str,
    reason: MetricsFault,
    per_tick: int,
    fake: FakeApiServer,
    clock: VirtualClock,
    api: client.ApiClient,
    prometheus_url: str,
    fault_server: Callable[[Answer], FaultServer],
) -> None:
    answers: dict[str, Answer] = {
        "http-500": lambda _b: (500, b"internal error"),
        "http-400": lambda _b: (400, _ERROR),
        "not-json": lambda _b: (200, b"<html>a proxy's login page</html>"),
        "empty": _proxy(prometheus_url, _drop),
        "nan": _proxy(prometheus_url, _nan),
    }
    url, server = serve_fault(fault, answers, fault_server)
    registry = CollectorRegistry()
    timeout_s = 0.3 if fault == "timeout" else 10.0  # the proxies ask a real Prometheus
    source = PrometheusMetricsSource(HttpPrometheusClient(url, timeout_s=timeout_s))
    world = _world(fake, clock, api, source, ControllerMetrics(registry))
    _deploy_policies(world)
    clock.set(T0 + 1800)
    for _ in range(2):
        world.tick()
    assert source.faults == {reason: 2 * per_tick}
    value = registry.get_sample_value(
        "sloscaler_metrics_source_errors_total", {"reason": reason.value}
    )
    assert value == 2 * per_tick
    for name, n in (("h100", 5), ("h200", 4), ("nan", 4), ("stale", 4)):
        assert world.replicas(name) == n, name
    for p in ("main", "broken"):
        assert world.condition(p, "MetricsAvailable")["status"] == "False"
        assert {x["reason"] for x in world.status(p)["pools"]} == {"HoldOnMissingData"}
    if reason not in TICK_FAULTS:
        assert server is not None
        assert server.requests == 2 * QUERIES_PER_TICK  # every query answered, data unusable
    elif server is not None:
        assert server.requests == 2  # the first failure ends the tick's queries


# --- sloscaler run --prometheus-url -------------------------------------------------------------


def test_run_once_reads_the_prometheus_url(
    tmp_path: Path,
    fake: FakeApiServer,
    api: client.ApiClient,
    fault_server: Callable[[Answer], FaultServer],
) -> None:
    server = fault_server(lambda _b: (503, b"overloaded"))
    fake.store.put(make_deployment("a", NS, 2, {"app": "a"}))
    fake.store.put(policy("p", [pool("a")]))
    kubeconfig = write_kubeconfig(tmp_path, fake.url)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--once",
            "--no-leader-elect",
            "--kubeconfig",
            str(kubeconfig),
            "--prometheus-url",
            server.url,
            "--prometheus-timeout",
            "2",
            "--log-level",
            "warning",
        ],
    )
    assert result.exit_code == 0, result.output
    assert server.requests == 1  # asked, failed, held
    assert '"reason": "server_error"' in result.output
    obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )
    status = obj["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"
    assert status["pools"][0]["desiredReplicas"] == 2


def test_queries_per_tick_do_not_grow_with_pools(prom: HttpPrometheusClient) -> None:
    source = PrometheusMetricsSource(prom)
    many = [
        _policy_ref(f"p{i}", [(f"pool-{i}-{j}", "H100", 1) for j in range(20)]) for i in range(25)
    ]
    source.observe(many, T0 + 600)
    assert source.queries == QUERIES_PER_TICK
    source.observe([MAIN], T0 + 600)
    assert source.queries == 2 * QUERIES_PER_TICK
    assert set(Query) == set(source.queries_text)
    source.observe([], T0 + 600)  # nothing to observe: nothing asked
    assert source.queries == 2 * QUERIES_PER_TICK
