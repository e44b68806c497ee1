"""The fake API server answers the official client as a real one would (over real HTTP)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from autoscaler.k8s.fake_apiserver import FakeApiServer, make_deployment, make_pod
from autoscaler.k8s.fake_crds import httproute, leaderworkerset
from autoscaler.k8s.patch import json_patch, merge_patch
from autoscaler.k8s.selectors import parse_selector

G, V, P = "sloscaler.dev", "v1alpha1", "slopolicies"


def _policy(name: str = "p", ns: str = "ns") -> dict[str, Any]:
    with open("deploy/examples/slopolicy.yaml") as f:
        obj = yaml.safe_load(f)
    obj["metadata"] = {"name": name, "namespace": ns}
    return dict(obj)


def _status(e: client.ApiException) -> dict[str, Any]:
    return dict(json.loads(e.body))


def test_discovery(api: client.ApiClient) -> None:
    groups = client.ApisApi(api).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps", "coordination.k8s.io", "sloscaler.dev", "gateway.networking.k8s.io"} <= names
    resources = client.AppsV1Api(api).get_api_resources()
    assert {"deployments", "deployments/scale", "statefulsets/status"} <= {
        r.name for r in resources.resources
    }
    core = client.CoreV1Api(api).get_api_resources()
    assert "pods" in {r.name for r in core.resources}
    assert client.VersionApi(api).get_code().minor == "37"


def test_crud_resource_version_and_conflict(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment("ns", make_deployment("web", "ns", 1))
    assert d.metadata.generation == 1
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment("ns", make_deployment("web", "ns", 1))
    assert err.value.status == 409
    assert _status(err.value)["reason"] == "AlreadyExists"
    d.spec.replicas = 2
    d2 = apps.replace_namespaced_deployment("web", "ns", d)
    assert int(d2.metadata.resource_version) > int(d.metadata.resource_version)
    assert d2.metadata.generation == 2
    d.spec.replicas = 3  # stale resourceVersion
    with pytest.raises(client.ApiException) as err:
        apps.replace_namespaced_deployment("web", "ns", d)
    assert err.value.status == 409
    assert _status(err.value)["reason"] == "Conflict"
    labels = apps.patch_namespaced_deployment("web", "ns", {"metadata": {"labels": {"x": "y"}}})
    assert labels.metadata.generation == 2  # metadata does not bump generation
    apps.delete_namespaced_deployment("web", "ns")
    with pytest.raises(client.ApiException) as err:
        apps.read_namespaced_deployment("web", "ns")
    assert err.value.status == 404
    assert _status(err.value)["reason"] == "NotFound"


def test_invalid_builtin_objects_get_422_with_a_status(api: client.ApiClient) -> None:
    bad = make_deployment("web", "ns", 1)
    bad["spec"]["replicas"] = "three"
    raw = client.CustomObjectsApi(api)  # untyped bodies: no client-side checks
    with pytest.raises(client.ApiException) as err:
        raw.create_namespaced_custom_object("apps", "v1", "ns", "deployments", bad)
    status = _status(err.value)
    assert err.value.status == 422
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.replicas"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "Bad_Name"},
        "spec": {},
    }
    with pytest.raises(client.ApiException) as err:
        raw.create_namespaced_custom_object("coordination.k8s.io", "v1", "ns", "leases", lease)
    assert err.value.status == 422
    unknown = make_pod("p", "ns", {}, True)
    unknown["spec"]["bogus"] = 1
    response = api.rest_client.request(
        "POST",
        f"{api.configuration.host}/api/v1/namespaces/ns/pods",
        headers={"Content-Type": "application/json"},
        body=unknown,
    )
    response.read()
    assert response.status == 422
    assert "bogus" in json.loads(response.data)["message"]


def test_custom_resources_are_validated_and_pruned(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    obj = _policy()
    obj["spec"]["unknownField"] = 1
    created = co.create_namespaced_custom_object(G, V, "ns", P, obj)
    assert "unknownField" not in created["spec"]
    bad = _policy("bad")
    bad["spec"]["pools"][0]["role"] = "router"
    with pytest.raises(client.ApiException) as err:
        co.create_namespaced_custom_object(G, V, "ns", P, bad)
    assert err.value.status == 422
    assert "spec.pools[0].role" in _status(err.value)["message"]


def test_status_subresource_semantics(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "ns", P, _policy())
    # a status write ignores spec changes and does not bump generation
    obj = co.get_namespaced_custom_object(G, V, "ns", P, "p")
    obj["spec"]["mode"] = "direct"
    obj["status"] = {"observedGeneration": 1}
    out = co.replace_namespaced_custom_object_status(G, V, "ns", P, "p", obj)
    assert out["spec"]["mode"] == "hpa"
    assert out["status"] == {"observedGeneration": 1}
    assert out["metadata"]["generation"] == 1
    # a main-resource write ignores status and bumps generation on spec change
    out["status"] = {"observedGeneration": 99}
    out["spec"]["mode"] = "advisory"
    out2 = co.replace_namespaced_custom_object(G, V, "ns", P, "p", out)
    assert out2["status"] == {"observedGeneration": 1}
    assert out2["metadata"]["generation"] == 2
    patched = co.patch_namespaced_custom_object_status(
        G, V, "ns", P, "p", {"status": {"observedGeneration": 2}}
    )
    assert patched["status"]["observedGeneration"] == 2


def test_scale_subresource_for_deployments_and_leaderworkersets(
    api: client.ApiClient, fake: FakeApiServer
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("ns", make_deployment("web", "ns", 2, {"app": "web"}))
    scale = apps.read_namespaced_deployment_scale("web", "ns")
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=web"
    scale.spec.replicas = 4
    apps.replace_namespaced_deployment_scale("web", "ns", scale)
    assert apps.read_namespaced_deployment("web", "ns").spec.replicas == 4
    with pytest.raises(client.ApiException) as err:  # stale resourceVersion
        apps.replace_namespaced_deployment_scale("web", "ns", scale)
    assert err.value.status == 409
    with pytest.raises(client.ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", "ns", {"spec": {"replicas": -1}})
    assert err.value.status == 422
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", "ns", "leaderworkersets", leaderworkerset("ep", "ns", 1)
    )
    fake.store.run_workload_controllers()
    lws_scale = co.get_namespaced_custom_object_scale(
        "leaderworkerset.x-k8s.io", "v1", "ns", "leaderworkersets", "ep"
    )
    assert lws_scale["spec"]["replicas"] == 1
    assert lws_scale["status"] == {"replicas": 1, "selector": "app=ep"}
    co.patch_namespaced_custom_object_scale(
        "leaderworkerset.x-k8s.io", "v1", "ns", "leaderworkersets", "ep", {"spec": {"replicas": 3}}
    )
    fake.store.run_workload_controllers()
    pods = client.CoreV1Api(api).list_namespaced_pod("ns", label_selector="app=ep")
    assert len(pods.items) == 3


def test_patch_formats(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "ns", "httproutes", httproute("r", "ns", ["a", "b"])
    )
    ops = [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 7}]
    jp = "application/json-patch+json"
    out = co.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "ns", "httproutes", "r", ops, _content_type=jp
    )
    assert [b["weight"] for b in out["spec"]["rules"][0]["backendRefs"]] == [1, 7]
    with pytest.raises(client.ApiException) as err:  # weight above the Gateway API maximum
        co.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            "ns",
            "httproutes",
            "r",
            [{"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 2_000_000}],
            _content_type=jp,
        )
    assert err.value.status == 422
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    assert json_patch({"l": [1, 2]}, [{"op": "add", "path": "/l/-", "value": 3}]) == {
        "l": [1, 2, 3]
    }


def test_label_selectors() -> None:
    sel = parse_selector("app=web,tier in (a, b),!canary,env!=prod")
    assert sel.matches({"app": "web", "tier": "a", "env": "dev"})
    assert not sel.matches({"app": "web", "tier": "c"})
    assert not sel.matches({"app": "web", "tier": "a", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "a", "env": "prod"})


def test_list_filters_by_label_selector(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i, app in enumerate(("a", "a", "b")):
        core.create_namespaced_pod("ns", make_pod(f"p{i}", "ns", {"app": app}, True))
    assert len(core.list_namespaced_pod("ns", label_selector="app=a").items) == 2
    assert len(core.list_pod_for_all_namespaces().items) == 3
    assert len(core.list_namespaced_pod("other").items) == 0


def test_watch_streams_changes_and_resumes(api: client.ApiClient, fake: FakeApiServer) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "ns", P, _policy("a"))
    listed = co.list_namespaced_custom_object(G, V, "ns", P)
    rv = listed["metadata"]["resourceVersion"]

    def writer() -> None:
        co.create_namespaced_custom_object(G, V, "ns", P, _policy("b"))
        co.delete_namespaced_custom_object(G, V, "ns", P, "a")

    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    threading.Thread(target=writer).start()
    for event in w.stream(
        co.list_namespaced_custom_object, G, V, "ns", P, resource_version=rv, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "b"), ("DELETED", "a")]


def test_injected_failures(api: client.ApiClient, fake: FakeApiServer) -> None:
    fake.fail_next("GET", "/deployments/web$", 503, "ServiceUnavailable")
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("ns", make_deployment("web", "ns", 1))
    with pytest.raises(client.ApiException) as err:
        apps.read_namespaced_deployment("web", "ns")
    assert err.value.status == 503
    assert apps.read_namespaced_deployment("web", "ns").spec.replicas == 1
