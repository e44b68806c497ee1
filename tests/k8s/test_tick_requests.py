"""What one tick asks of the API server, and how: one keep-alive connection, status writes that
carry the status only, ready pods counted through a label index."""

from __future__ import annotations

import pytest
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.k8s.client import PodView
from autoscaler.k8s.controller import ReadyIndex, status_body
from autoscaler.k8s.fake_apiserver import FakeApiServer
from autoscaler.k8s.selectors import parse_selector
from tests.k8s.world import NS, World, policy, pool


@pytest.fixture
def world(fake: FakeApiServer, clock: VirtualClock, api: client.ApiClient) -> World:
    return World(fake, clock, api)


def _connections(api: client.ApiClient) -> int:
    pools = api.rest_client.pool_manager.pools
    # keys(): the pool container refuses plain iteration (not thread-safe)
    return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118


def test_a_tick_with_scale_changes_and_events_reuses_one_connection(world: World) -> None:
    for name in ("a", "b", "c"):
        world.deploy(name, 2)
    world.create(policy("p", [pool("a"), pool("b"), pool("c")]))
    world.demand("p", 60.0, a=2, b=2, c=2)
    before = _connections(world.api)
    report = world.tick()
    assert report.scale_writes == 3
    assert report.events == 3  # each Event's response is read, so its connection is reused
    assert _connections(world.api) - before <= 1


def test_status_writes_send_identity_precondition_and_status_only() -> None:
    raw = {
        "apiVersion": "sloscaler.dev/v1alpha1",
        "kind": "SLOPolicy",
        "metadata": {
            "name": "p",
            "namespace": NS,
            "uid": "u-1",
            "resourceVersion": "42",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"model": "llama", "pools": []},
        "status": {"observedGeneration": 1},
    }
    body = status_body(raw, {"observedGeneration": 2})
    assert body == {
        "apiVersion": "sloscaler.dev/v1alpha1",
        "kind": "SLOPolicy",
        "metadata": {"name": "p", "namespace": NS, "uid": "u-1", "resourceVersion": "42"},
        "status": {"observedGeneration": 2},
    }


def test_a_status_write_keeps_the_stored_spec(world: World) -> None:
    world.deploy("a", 2)
    world.create(policy("p", [pool("a")]))
    world.demand("p", 20.0, a=2)
    world.tick()
    stored = world.custom.get_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )
    assert isinstance(stored, dict)
    assert stored["spec"]["pools"][0]["name"] == "a"
    assert stored["status"]["pools"][0]["desiredReplicas"] == 6


def _pods(*specs: tuple[dict[str, str], bool, int]) -> list[PodView]:
    return [
        PodView(f"pod-{i}-{j}", labels, ready)
        for i, (labels, ready, n) in enumerate(specs)
        for j in range(n)
    ]


PODS = _pods(
    ({"app": "a", "tier": "x"}, True, 3),
    ({"app": "a", "tier": "y"}, True, 2),
    ({"app": "a", "tier": "y"}, False, 4),  # not ready: never counted
    ({"app": "b"}, True, 5),
    ({"role": "decode"}, True, 7),
)


@pytest.mark.parametrize(
    ("selector", "ready"),
    [
        ("app=a", 5),
        ("app==a,tier=y", 2),
        ("app in (a,b)", 10),
        ("app=a,tier!=y", 3),
        ("app notin (a)", 12),  # no equality to narrow on: every label set is matched
        ("!app", 7),
        ("app", 10),
        ("app=zzz", 0),
        ("", 17),
    ],
)
def test_ready_index_counts_like_matching_every_pod(selector: str, ready: int) -> None:
    sel = parse_selector(selector)
    assert ReadyIndex(PODS).count(sel) == ready
    assert sum(1 for p in PODS if p.ready and sel.matches(p.labels)) == ready
