"""The controller through the fake API server: scaling per mode, status, events, conflicts,
invalid policies, HTTPRoute weights."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.k8s.controller import persisted_history, restored_state
from autoscaler.k8s.fake_apiserver import FakeApiServer
from autoscaler.k8s.fake_crds import leaderworkerset
from policies.normalize import held_now
from policies.types import PoolState, Recommendation
from tests.k8s.world import NS, G, P, V, World, policy, pool


@pytest.fixture
def world(fake: FakeApiServer, clock: VirtualClock, api: client.ApiClient) -> World:
    return World(fake, clock, api)


def _scale_writes(fake: FakeApiServer) -> list[Any]:
    return [r for r in fake.writes() if r.path.endswith("/scale")]


def test_direct_mode_scales_up_and_down_with_events_and_status(world: World) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)  # 20 rps / (4 × 0.9) per replica → 6
    report = world.tick()
    assert report.scale_writes == 1
    assert world.replicas("a") == 6
    status = world.status("p")
    assert status["observedGeneration"] == 1
    (a,) = status["pools"]
    assert (a["currentReplicas"], a["desiredReplicas"], a["reason"]) == (2, 6, "DemandForecast")
    assert a["capacityRps"] == pytest.approx(4.0)
    assert a["capacityScale"] == 1.0  # nothing attained yet, nothing learned from it
    assert 0 < a["predictedTTFTP90Ms"] < 500
    assert world.condition("p", "Ready")["status"] == "True"
    assert world.condition("p", "ModelReady")["status"] == "True"
    assert world.condition("p", "MetricsAvailable")["status"] == "True"
    assert world.condition("p", "ScalingLimited")["status"] == "False"
    scaled = [e for e in world.events() if e.reason == "DemandForecast"]
    assert len(scaled) == 1
    assert "from 2 to 6" in scaled[0].message
    assert scaled[0].involved_object.kind == "SLOPolicy"
    # demand drops: the forecast's upper quantile comes down over a few ticks, then the pool
    world.demand("p", 5.0, a=6)
    for _ in range(20):
        world.tick()
    assert world.replicas("a") < 6
    # steady: a tick with nothing to change writes no scale and no event
    n_scale, n_events = len(_scale_writes(world.fake)), len(world.events())
    world.tick()
    assert len(_scale_writes(world.fake)) == n_scale
    assert len(world.events()) == n_events


@pytest.mark.parametrize("status_kept", [True, False])
def test_a_new_leader_restores_the_scale_down_window_from_the_status(
    world: World, status_kept: bool
) -> None:
    """Demand drops, then the controller restarts: the successor reads the recommendations its
    predecessor wrote to the status and holds the pool until 300 s after the last high one. With
    the recommendations gone (a status edited away) it holds only its first look's start-up
    horizon (120 s + one tick) — the case the status prevents."""
    world.deploy("a", 2)
    behavior = {"scaleDownStabilizationSeconds": 300}
    world.create(policy("p", [pool("a")], behavior=behavior))
    world.demand("p", 20.0, a=2)
    world.tick()  # t = 0: 20 rps / (4 × 0.9) → 6
    assert world.replicas("a") == 6
    recs = world.status("p")["pools"][0]["recommendations"]
    assert [r["replicas"] for r in recs] == [6]
    if not status_kept:
        obj = world.custom.get_namespaced_custom_object(G, V, NS, P, "p")
        obj["status"]["pools"][0]["recommendations"] = []
        world.custom.replace_namespaced_custom_object_status(G, V, NS, P, "p", obj)
    world.restart()
    world.demand("p", 1.0, a=6)
    sizes = [world.replicas("a") for _ in range(21) if world.tick() is not None]
    if status_kept:
        assert sizes[:19] == [6] * 19  # t = 15 … 285 s: 6 recommended at t = 0
        assert sizes[19:] == [1, 1]  # t = 300 s: out of the window
    else:
        assert sizes[:9] == [6] * 9  # t = 15 … 135 s
        assert sizes[9] == 1
    (a,) = world.status("p")["pools"]
    assert a["reason"] in ("DemandForecast", "ScaleDownStabilized")
    assert {r["replicas"] for r in a["recommendations"]} <= {1, 6}


def test_max_replicas_sets_scaling_limited(world: World) -> None:
    world.deploy("a", 1)
    world.create(policy("p", [pool("a", maxReplicas=3)]))
    world.demand("p", 100.0, a=1)
    world.tick()
    assert world.replicas("a") == 3
    limited = world.condition("p", "ScalingLimited")
    assert limited["status"] == "True"
    assert limited["reason"] == "TooManyReplicas"
    assert "at maxReplicas 3" in limited["message"]


def test_missing_metrics_hold_and_say_so(world: World) -> None:
    world.deploy("a", 3)
    world.create(policy("p", [pool("a")]))
    world.tick()  # no demand data at all
    assert world.replicas("a") == 3
    cond = world.condition("p", "MetricsAvailable")
    assert cond["status"] == "False"
    assert cond["reason"] == "MetricsMissing"
    assert world.status("p")["pools"][0]["reason"] == "HoldOnMissingData"
    assert _scale_writes(world.fake) == []


def test_advisory_mode_writes_nothing_but_status_and_events(world: World) -> None:
    world.deploy("a", 1)
    world.route("r", ["a"])
    world.create(policy("p", [pool("a")], mode="advisory", gateway={"name": "r"}))
    world.demand("p", 1.0, a=1)
    before = len(world.fake.writes())
    world.tick()
    first = world.status("p")["pools"][0]["desiredReplicas"]
    world.demand("p", 40.0, a=1)
    world.tick()
    assert world.replicas("a") == 1
    writes = world.fake.writes()[before:]
    assert {w.method for w in writes} <= {"PUT", "POST"}
    assert all(
        w.path.endswith("/slopolicies/p/status") or w.path.endswith("/events") for w in writes
    ), [w.path for w in writes]
    second = world.status("p")["pools"][0]["desiredReplicas"]
    assert second > first
    assert world.board.get(NS, "p", "a") is None  # HPA is not fed from advisory policies
    recommended = [e for e in world.events() if "advisory" in e.message]
    assert len(recommended) == 1


def test_hpa_mode_publishes_and_does_zero_to_one_itself(world: World) -> None:
    world.deploy("a", 0)
    spec_pool = pool("a", minReplicas=0, scaleToZero=True)
    world.create(
        policy(
            "p",
            [spec_pool],
            mode="hpa",
            behavior={"idleBeforeZeroSeconds": 60, "scaleDownStabilizationSeconds": 0},
        )
    )
    world.demand("p", 0.0, queued=5, a=0)  # requests wait at the gateway for a pool at zero
    world.tick()
    assert world.replicas("a") == 1  # the controller wakes it: HPA cannot leave zero
    published = world.board.get(NS, "p", "a")
    assert published is not None
    assert published.replicas == 1
    world.demand("p", 20.0, a=1)
    world.tick()
    assert world.replicas("a") == 1  # from 1 upward HPA acts, on the published value
    published = world.board.get(NS, "p", "a")
    assert published is not None
    assert published.replicas == 5  # HPA's default rate limit: max(1 + 4, 2 × 1)
    # idle long enough: the controller takes it to zero (HPA cannot)
    world.demand("p", 0.0, a=1)
    for _ in range(40):
        world.tick()
        if world.replicas("a") == 0:
            break
    assert world.replicas("a") == 0
    assert world.status("p")["pools"][0]["reason"] == "ScaleToZero"
    messages = {e.reason: e.message for e in world.events()}
    assert "from 0 to 1" in messages["DemandForecast"]
    assert "from 1 to 0" in messages["ScaleToZero"]


def test_conflict_on_scale_rereads_and_writes_once(world: World) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)
    # a concurrent writer changes the Deployment between our read and our write
    world.fake.before(
        "PUT", r"/deployments/a/scale$", lambda s: s.bump("apps/v1", "Deployment", NS, "a")
    )
    report = world.tick()
    assert report.errors.get("conflict") == 1
    assert world.replicas("a") == 6
    puts = [r for r in _scale_writes(world.fake) if r.method == "PUT"]
    assert [r.code for r in puts] == [409, 200]


def test_persistent_conflict_is_not_retried_blindly(world: World) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)
    world.fake.before(
        "PUT",
        r"/deployments/a/scale$",
        lambda s: s.bump("apps/v1", "Deployment", NS, "a"),
        times=10,
    )
    world.tick()
    puts = [r for r in _scale_writes(world.fake) if r.method == "PUT"]
    assert len(puts) == 2  # one write, one re-read-and-write, then wait for the next tick
    assert world.condition("p", "Ready")["reason"] == "ActuationFailed"


def test_status_conflict_rereads_and_retries(world: World) -> None:
    world.deploy("a", 1)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 4.0, a=1)
    world.fake.before(
        "PUT",
        r"/slopolicies/p/status$",
        lambda s: s.bump("sloscaler.dev/v1alpha1", "SLOPolicy", NS, "p"),
    )
    report = world.tick()
    assert report.status_writes == 1
    assert world.status("p")["observedGeneration"] == 1


@pytest.mark.parametrize(
    ("obj_change", "reason", "words"),
    [
        (
            lambda o: o["spec"]["pools"][0].update(minReplicas=5, maxReplicas=2),
            "InvalidSpec",
            "maxReplicas 2 < minReplicas 5",
        ),
        (
            lambda o: o["spec"]["pools"].append(dict(o["spec"]["pools"][0])),
            "InvalidSpec",
            "duplicate pool name 'a'",
        ),
        (
            lambda o: o["spec"]["pools"][0]["scaleTargetRef"].update(name="nope"),
            "TargetNotFound",
            "Deployment llm/nope not found",
        ),
    ],
)
def test_invalid_policy_is_reported_and_does_not_block_others(
    world: World, obj_change: Any, reason: str, words: str
) -> None:
    world.deploy("a", 1)
    world.deploy("b", 2)
    bad = policy("bad", [pool("a")])
    obj_change(bad)
    world.fake.store.put_unvalidated(bad)  # as if stored under an older, laxer CRD
    world.create(policy("good", [pool("b")]))
    world.demand("good", 20.0, b=2)
    world.demand("bad", 20.0, a=1)
    report = world.tick()
    assert report.invalid == 1
    ready = world.condition("bad", "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == reason
    assert words in ready["message"]
    assert world.replicas("b") == 6  # the good policy was not blocked
    assert world.replicas("a") == 1
    warnings = [e for e in world.events() if e.type == "Warning"]
    assert [e.reason for e in warnings] == [reason]
    world.tick()  # the same problem again: no second event
    assert len([e for e in world.events() if e.type == "Warning"]) == 1


def test_api_errors_on_one_policy_do_not_crash_the_tick(world: World) -> None:
    world.deploy("a", 2)
    world.deploy("b", 2)
    world.create(policy("p1", [pool("a")]))
    world.create(policy("p2", [pool("b")]))
    world.demand("p1", 20.0, a=2)
    world.demand("p2", 20.0, b=2)
    world.fake.fail_next("GET", r"/deployments/a/scale$", 503, "ServiceUnavailable")
    report = world.tick()
    assert report.errors == {"transient": 1}
    assert world.replicas("a") == 2  # retried next tick
    assert world.replicas("b") == 6
    world.tick()
    assert world.replicas("a") == 6


def test_routing_weights_patch_the_httproute(world: World) -> None:
    world.deploy("fast", 2)
    world.deploy("cheap", 2)
    world.route("r", ["fast", "cheap", "other"])
    fixed = {"minReplicas": 2, "maxReplicas": 2}
    world.create(
        policy(
            "p",
            [pool("fast", "H100", **fixed), pool("cheap", "L40S", **fixed)],
            gateway={"name": "r"},
        )
    )
    world.demand("p", 6.0, fast=2, cheap=2)
    world.tick()
    route = world.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", "r"
    )
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    # ready capacity 2 × 4 (H100) vs 2 × 2 (L40S): 2/3 and 1/3, per-mille
    assert weights == {"fast": 667, "cheap": 333, "other": 1}
    status = world.status("p")
    shares = {p["name"]: p["routingWeight"] for p in status["pools"]}
    assert shares["fast"] == pytest.approx(2 / 3, abs=1e-3)
    n = len([r for r in world.fake.writes() if "/httproutes/" in r.path])
    world.tick()  # same weights: no write
    assert len([r for r in world.fake.writes() if "/httproutes/" in r.path]) == n


def test_leaderworkerset_and_statefulset_targets(world: World) -> None:
    world.fake.store.put(leaderworkerset("ep", NS, 1))
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "dec"}
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "ep"}
    from autoscaler.k8s.fake_apiserver import make_deployment

    world.fake.store.put(make_deployment("dec", NS, 1, {"app": "dec"}, kind="StatefulSet"))
    world.create(
        policy(
            "p",
            [
                pool("ep", gpusPerReplica=8, scaleTargetRef=lws, role="expert-parallel"),
                pool("dec", scaleTargetRef=sts, role="expert-parallel"),
            ],
        )
    )
    world.demand("p", 30.0, ep=1, dec=1)
    world.tick()
    lws_obj = world.custom.get_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", NS, "leaderworkersets", "ep"
    )
    total = (
        lws_obj["spec"]["replicas"]
        + world.apps.read_namespaced_stateful_set("dec", NS).spec.replicas
    )
    assert total > 2
    assert world.condition("p", "Ready")["status"] == "True"
    assert {p["readyReplicas"] for p in world.status("p")["pools"]} == {1}


def test_a_bug_in_one_policy_costs_that_policy_one_tick(world: World) -> None:
    world.deploy("a", 2)
    world.deploy("b", 2)
    world.create(policy("boom", [pool("a")]))
    world.create(policy("fine", [pool("b")]))
    world.demand("boom", 20.0, a=2)
    world.demand("fine", 20.0, b=2)
    real = world.controller.capacity

    class Broken:
        def capacity_model(self, ref: Any) -> Any:
            if ref.name == "boom":
                raise RuntimeError("bug")
            return real.capacity_model(ref)

        def model_status(self, ref: Any) -> Any:
            return real.model_status(ref)

    world.controller.capacity = Broken()
    report = world.tick()
    assert report.errors == {"internal": 1}
    assert world.replicas("b") == 6
    assert world.replicas("a") == 2


def test_persisted_history_leaves_out_only_entries_a_later_one_makes_moot() -> None:
    """The docstring's example: what is written answers every later window (scale-down at any
    capacity per replica now, scale-up) as the whole history does, and restores exactly."""
    rec = Recommendation
    full = PoolState(
        history=(rec(0.0, 6, 1.0), rec(15.0, 4, 1.0), rec(30.0, 6, 1.2), rec(45.0, 6, 0.9))
    )
    written = persisted_history(full)
    assert [(r["replicas"], r["capacityRps"]) for r in written] == [(4, 1.0), (6, 1.2), (6, 0.9)]
    raw = {"status": {"pools": [{"name": "a", "recommendations": written}]}}
    restored = restored_state(raw, ["a"]).pools["a"].history
    assert restored == full.history[1:]
    for now in (50.0, 310.0, 320.0, 340.0):
        for cap in (0.5, 1.0, 1.5, 3.0):

            def window(h: tuple[Recommendation, ...], now: float = now, cap: float = cap) -> object:
                inside = [r for r in h if r.t > now - 300]
                return max((held_now(r, cap) for r in inside), default=None), min(
                    (r.replicas for r in inside), default=None
                )

            assert window(restored) == window(full.history)


def test_a_tiny_capacity_is_persisted_as_a_positive_number() -> None:
    """Six significant digits, not six decimals: the CRD requires capacityRps > 0."""
    written = persisted_history(PoolState(history=(Recommendation(0.0, 2, 1.234567e-9),)))
    assert written[0]["capacityRps"] == 1.23457e-9


def test_a_hold_is_persisted_without_capacity_and_restored_as_replicas() -> None:
    held = PoolState(history=(Recommendation(0.0, 6, 2.0), Recommendation(15.0, 6)))
    written = persisted_history(held)
    assert written == [{"time": "1970-01-01T00:00:15.000000Z", "replicas": 6}]
    raw = {"status": {"pools": [{"name": "a", "recommendations": written}]}}
    assert restored_state(raw, ["a"]).pools["a"].history == (Recommendation(15.0, 6, None),)


@pytest.mark.parametrize(
    "recommendations",
    [
        [{"time": "yesterday", "replicas": 3}],
        [{"replicas": 3}],
        [{"time": "2026-01-01T00:00:00Z", "replicas": "many"}],
        [{"time": "2026-01-01T00:00:00Z", "replicas": 3, "capacityRps": 0}],
        [{"time": "2026-01-01T00:00:00Z", "replicas": 3, "capacityRps": "fast"}],
        "not a list of objects",
    ],
)
def test_a_status_that_does_not_parse_restores_nothing(recommendations: Any) -> None:
    raw = {
        "status": {
            "pools": [
                {"name": "a", "recommendations": recommendations},
                {"name": "b", "recommendations": [{"time": "2026-01-01T00:00:00Z", "replicas": 2}]},
                {
                    "name": "gone",
                    "recommendations": [{"time": "2026-01-01T00:00:00Z", "replicas": 9}],
                },
            ]
        }
    }
    state = restored_state(raw, ["a", "b"])
    assert set(state.pools) == {"b"}
    assert state.pools["b"].history[0].replicas == 2
