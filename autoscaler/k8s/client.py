"""The controller's view of the Kubernetes API: one narrow protocol, one adapter over the official
client.

Why: only this module talks to the API server. The controller asks for exactly what a tick needs
— SLOPolicies, a target's ``scale`` subresource, the pods of a namespace, a policy's status, an
HTTPRoute, Events, a Lease — as plain JSON dicts, and gets this package's errors
(:mod:`autoscaler.k8s.errors`) instead of client exceptions. Reads skip the client's model
deserialization (``_preload_content=False`` + ``json.loads``): listing 2,000 pods as typed objects
costs seconds, as dicts milliseconds.

Every scale target goes through its ``scale`` subresource at
``/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/scale`` — the same path for Deployments,
StatefulSets and LeaderWorkerSets — so the controller never needs to know a workload's schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from autoscaler.crd import GROUP, PLURAL, VERSION
from autoscaler.k8s.errors import translate
from autoscaler.k8s.pods import pod_ready

Obj = dict[str, Any]
T = TypeVar("T")

#: (group, version, plural) of each scale target kind
TARGET_RESOURCES: dict[str, tuple[str, str, str]] = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
}
ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")
LEASE = ("coordination.k8s.io", "v1", "leases")


@dataclass(frozen=True, slots=True)
class TargetRef:
    namespace: str
    kind: str  # Deployment, StatefulSet or LeaderWorkerSet
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ScaleView:
    """A target's ``autoscaling/v1`` Scale."""

    replicas: int  # spec.replicas
    status_replicas: int
    selector: str  # label selector of its pods ("" when the target does not report one)
    resource_version: str


@dataclass(frozen=True, slots=True)
class PodView:
    name: str
    labels: dict[str, str]
    ready: bool


class Cluster(Protocol):
    """What the controller and the leader elector need from the API server."""

    def list_policies(self, namespace: str | None = None) -> list[Obj]: ...

    def get_policy(self, namespace: str, name: str) -> Obj: ...

    def replace_policy_status(self, namespace: str, name: str, obj: Obj) -> Obj: ...

    def get_scale(self, target: TargetRef) -> ScaleView: ...

    def set_scale(self, target: TargetRef, replicas: int, resource_version: str) -> ScaleView: ...

    def list_pods(self, namespace: str) -> list[PodView]: ...

    def get_route(self, namespace: str, name: str) -> Obj: ...

    def replace_route(self, namespace: str, name: str, obj: Obj) -> Obj: ...

    def create_event(self, namespace: str, event: Obj) -> None: ...

    def get_lease(self, namespace: str, name: str) -> Obj: ...

    def create_lease(self, namespace: str, lease: Obj) -> Obj: ...

    def replace_lease(self, namespace: str, name: str, lease: Obj) -> Obj: ...


def _scale_view(obj: Obj) -> ScaleView:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return ScaleView(
        replicas=int(spec.get("replicas") or 0),
        status_replicas=int(status.get("replicas") or 0),
        selector=str(status.get("selector") or ""),
        resource_version=str(obj["metadata"]["resourceVersion"]),
    )


class KubeCluster:
    """:class:`Cluster` over the official ``kubernetes`` client."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core: Any = client.CoreV1Api(api_client)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as e:
            raise translate(e, what) from e

    @staticmethod
    def _json(response: Any) -> Obj:
        return dict(json.loads(response.data))

    # --- SLOPolicies --------------------------------------------------------------------------

    def list_policies(self, namespace: str | None = None) -> list[Obj]:
        def call() -> Any:
            if namespace is None:
                return self.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _preload_content=False
                )
            return self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _preload_content=False
            )

        return list(self._json(self._call("list SLOPolicies", call))["items"])

    def get_policy(self, namespace: str, name: str) -> Obj:
        return self._json(
            self._call(
                f"get SLOPolicy {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                ),
            )
        )

    def replace_policy_status(self, namespace: str, name: str, obj: Obj) -> Obj:
        return self._json(
            self._call(
                f"update status of SLOPolicy {namespace}/{name}",
                lambda: self.custom.replace_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, obj, _preload_content=False
                ),
            )
        )

    # --- scale targets ------------------------------------------------------------------------

    def get_scale(self, target: TargetRef) -> ScaleView:
        group, version, plural = TARGET_RESOURCES[target.kind]
        return _scale_view(
            self._json(
                self._call(
                    f"get scale of {target}",
                    lambda: self.custom.get_namespaced_custom_object_scale(
                        group,
                        version,
                        target.namespace,
                        plural,
                        target.name,
                        _preload_content=False,
                    ),
                )
            )
        )

    def set_scale(self, target: TargetRef, replicas: int, resource_version: str) -> ScaleView:
        """Write absolute ``replicas``, conditional on ``resource_version`` (409 if stale)."""
        group, version, plural = TARGET_RESOURCES[target.kind]
        body = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": target.name,
                "namespace": target.namespace,
                "resourceVersion": resource_version,
            },
            "spec": {"replicas": replicas},
        }
        return _scale_view(
            self._json(
                self._call(
                    f"scale {target} to {replicas}",
                    lambda: self.custom.replace_namespaced_custom_object_scale(
                        group,
                        version,
                        target.namespace,
                        plural,
                        target.name,
                        body,
                        _preload_content=False,
                    ),
                )
            )
        )

    def list_pods(self, namespace: str) -> list[PodView]:
        data = self._json(
            self._call(
                f"list pods in {namespace}",
                lambda: self.core.list_namespaced_pod(namespace, _preload_content=False),
            )
        )
        return [
            PodView(p["metadata"]["name"], dict(p["metadata"].get("labels") or {}), pod_ready(p))
            for p in data["items"]
        ]

    # --- routes, events, leases ---------------------------------------------------------------

    def get_route(self, namespace: str, name: str) -> Obj:
        return self._json(
            self._call(
                f"get HTTPRoute {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    *ROUTE[:2], namespace, ROUTE[2], name, _preload_content=False
                ),
            )
        )

    def replace_route(self, namespace: str, name: str, obj: Obj) -> Obj:
        return self._json(
            self._call(
                f"update HTTPRoute {namespace}/{name}",
                lambda: self.custom.replace_namespaced_custom_object(
                    *ROUTE[:2], namespace, ROUTE[2], name, obj, _preload_content=False
                ),
            )
        )

    def create_event(self, namespace: str, event: Obj) -> None:
        response = self._call(
            f"create Event in {namespace}",
            lambda: self.core.create_namespaced_event(namespace, event, _preload_content=False),
        )
        # read the (unused) body: that returns the keep-alive connection to the pool; an unread
        # response holds it, and the next request opens a new TCP connection
        response.data  # noqa: B018

    def get_lease(self, namespace: str, name: str) -> Obj:
        return self._json(
            self._call(
                f"get Lease {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    *LEASE[:2], namespace, LEASE[2], name, _preload_content=False
                ),
            )
        )

    def create_lease(self, namespace: str, lease: Obj) -> Obj:
        return self._json(
            self._call(
                f"create Lease {namespace}/{lease['metadata']['name']}",
                lambda: self.custom.create_namespaced_custom_object(
                    *LEASE[:2], namespace, LEASE[2], lease, _preload_content=False
                ),
            )
        )

    def replace_lease(self, namespace: str, name: str, lease: Obj) -> Obj:
        return self._json(
            self._call(
                f"update Lease {namespace}/{name}",
                lambda: self.custom.replace_namespaced_custom_object(
                    *LEASE[:2], namespace, LEASE[2], name, lease, _preload_content=False
                ),
            )
        )
