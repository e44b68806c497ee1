"""The simulated cluster: routing, pod lifecycle, flow control, P/D, shedding, accounting."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from policies.routing import make_scorer
from simulator.cluster import DONE, FAILED, SHED, Cluster, GatewayConfig
from simulator.control import ClusterView, ControlActions
from simulator.engine import EngineConfig
from simulator.perf.catalog import load_catalog
from simulator.perf.transport import transport
from simulator.pods import PoolSpec, StartupSpec
from simulator.traces import poisson_trace
from simulator.traces.lengths import FixedLengths
from simulator.workload import RequestSpec, Trace


def pool(name: str, replicas: int, role: str = "aggregated", **kw: object) -> PoolSpec:
    profile = load_catalog().profile("h100", "llama-3-8b", 1)
    return PoolSpec(
        name=name,
        model="llama-3-8b",
        role=role,  # type: ignore[arg-type]
        profile=profile,
        engine=EngineConfig(max_model_len=8192),
        price_per_gpu_hour=4.0,
        replicas=replicas,
        **kw,  # type: ignore[arg-type]
    )


def trace(n: int = 200, rate: float = 4.0, seed: int = 1, **kw: object) -> Trace:
    return poisson_trace(
        rate,
        n / rate,
        lengths=FixedLengths(512, 64),
        seed=seed,
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class Scripted:
    """A controller that applies scripted actions at given times."""

    script: dict[float, ControlActions]
    name: str = "scripted"
    tick_interval_s: float = 5.0
    wake_delay_s: float = 0.1
    seen: list[ClusterView] = field(default_factory=list)

    def tick(self, view: ClusterView) -> ControlActions:
        self.seen.append(view)
        due = [t for t in self.script if t <= view.now]
        actions = ControlActions()
        for t in sorted(due):
            actions = self.script.pop(t)
        return actions


def run(pools: list[PoolSpec], tr: Trace, controller: object = None, **kw: object):
    cluster = Cluster(
        pools,
        tr,
        make_scorer(kw.pop("scorer", "least-load")),  # type: ignore[arg-type]
        transport("rdma"),
        GatewayConfig(queue_timeout_s=kw.pop("timeout", 300.0)),  # type: ignore[arg-type]
        controller=controller,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return cluster.run()


def test_static_cluster_serves_every_request_and_accounts_gpu_time() -> None:
    out = run([pool("a", 2)], trace())
    assert (out.records.status == DONE).all()
    assert out.pools[0].gpu_seconds(out.end_s) == pytest.approx(2 * out.end_s)
    assert (out.records.ttft() > 0).all()


def test_same_seed_same_outcome() -> None:
    a = run([pool("a", 2)], trace(), scorer="round-robin")
    b = run([pool("a", 2)], trace(), scorer="round-robin")
    assert (a.records.finish == b.records.finish).all()


def test_scale_from_zero_holds_requests_until_a_pod_is_ready() -> None:
    spec = pool("a", 0, startup=StartupSpec(pending_s=5.0, container_start_s=10.0, load_gbps=2.0))
    controller = Scripted({0.0: ControlActions(replicas={"a": 1})})
    out = run([spec], trace(50, rate=2.0), controller)
    startup = spec.startup_time_s()
    assert (out.records.status == DONE).all()
    first = out.records.first_token.min()
    assert first >= startup
    phases = [p.phase for v in controller.seen[:1] for p in v.pools[0].pods]
    assert phases in ([], ["pending"])


def test_held_requests_fail_after_the_queue_timeout_when_nothing_starts() -> None:
    out = run([pool("a", 0)], trace(20, rate=2.0), timeout=30.0)
    assert (out.records.status == FAILED).all()


def test_scale_down_drains_in_flight_requests() -> None:
    long = Trace("t", tuple(RequestSpec(0.1 * i, 256, 2000) for i in range(20)))
    controller = Scripted({5.0: ControlActions(replicas={"a": 1})})
    out = run([pool("a", 3)], long, controller, scorer="round-robin")
    assert (out.records.status == DONE).all()  # nothing lost on the drained pods
    retired = out.pools[0].retired
    assert len(retired) == 2
    assert all(p.gone_t > 5.0 for p in retired)  # they finished their requests first


def test_prefill_decode_disaggregation_transfers_kv_then_decodes() -> None:
    pools = [pool("p", 1, role="prefill"), pool("d", 1, role="decode")]
    tr = trace(40, rate=1.0)
    n = len(tr.requests)
    out = run(pools, tr)
    assert (out.records.status == DONE).all()
    p_metrics = out.pools[0].pods[0].engine.metrics
    d_metrics = out.pools[1].pods[0].engine.metrics
    assert p_metrics.prompt_tokens == d_metrics.prompt_tokens == n * 512  # as vLLM counts
    assert p_metrics.iteration_tokens.sum == n * 512 + n  # prompts + one sampled token each
    assert d_metrics.generation_tokens == n * 64
    assert set(out.records.pool.tolist()) == {1}  # completions are recorded on the decode pool


def test_sheddable_requests_are_shed_when_admission_is_closed() -> None:
    tr = trace(200, rate=4.0, sheddable_fraction=0.5)
    controller = Scripted({0.0: ControlActions(admit_sheddable={"llama-3-8b": False})})
    out = run([pool("a", 2)], tr, controller)
    sheddable = [r.priority < 0 for r in tr.requests]
    shed = out.records.status == SHED
    assert shed.sum() == sum(sheddable)
    assert all(s == x for s, x in zip(shed.tolist(), sheddable, strict=True))


def test_routing_weights_split_traffic_between_pools() -> None:
    controller = Scripted(
        {0.0: ControlActions(routing_weights={"llama-3-8b": {"a": 1.0, "b": 0.0}})}
    )
    out = run([pool("a", 1), pool("b", 1)], trace(100), controller)
    assert set(out.records.pool.tolist()) == {0}
