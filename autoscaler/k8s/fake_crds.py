"""Third-party CRDs the controller acts on, for the fake API server: Gateway API ``HTTPRoute``
(``gateway.networking.k8s.io/v1``) and ``LeaderWorkerSet`` (``leaderworkerset.x-k8s.io/v1``).

Why subsets: the upstream CRDs are thousands of lines; the fake needs the parts sloscaler reads
and writes, with the upstream validation of those parts (``backendRefs[].weight`` 0–1,000,000,
``port`` 1–65,535, the LWS ``scale`` subresource with ``.status.hpaPodSelector`` as its label
selector path). Everything else is kept as is (``x-kubernetes-preserve-unknown-fields``), so
objects written for a real cluster load here unchanged.
"""

from __future__ import annotations

from typing import Any

_ANY: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_ANY_LIST: dict[str, Any] = {"type": "array", "items": _ANY}


def _crd(
    group: str,
    kind: str,
    plural: str,
    version: str,
    schema: dict[str, Any],
    subresources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


BACKEND_REF: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "group": {"type": "string", "maxLength": 253},
        "kind": {"type": "string", "maxLength": 63, "minLength": 1},
        "name": {"type": "string", "maxLength": 253, "minLength": 1},
        "namespace": {"type": "string", "maxLength": 63, "minLength": 1},
        "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
        "weight": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000000},
        "filters": _ANY_LIST,
    },
}


def httproute_crd() -> dict[str, Any]:
    """``HTTPRoute`` (gateway.networking.k8s.io/v1), the parts sloscaler touches."""
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "parentRefs": {"type": "array", "maxItems": 32, "items": _ANY},
                    "hostnames": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
                    "rules": {
                        "type": "array",
                        "maxItems": 16,
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "matches": _ANY_LIST,
                                "filters": _ANY_LIST,
                                "timeouts": _ANY,
                                "backendRefs": {
                                    "type": "array",
                                    "maxItems": 16,
                                    "items": BACKEND_REF,
                                },
                            },
                        },
                    },
                },
            },
            "status": _ANY,
        },
    }
    return _crd(
        "gateway.networking.k8s.io", "HTTPRoute", "httproutes", "v1", schema, {"status": {}}
    )


def leaderworkerset_crd() -> dict[str, Any]:
    """``LeaderWorkerSet`` (leaderworkerset.x-k8s.io/v1) with its scale subresource."""
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["leaderWorkerTemplate"],
                "properties": {
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0},
                    "leaderWorkerTemplate": _ANY,
                    "rolloutStrategy": _ANY,
                    "startupPolicy": {"type": "string", "enum": ["LeaderCreated", "LeaderReady"]},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer", "format": "int32"},
                    "readyReplicas": {"type": "integer", "format": "int32"},
                    "updatedReplicas": {"type": "integer", "format": "int32"},
                    "hpaPodSelector": {"type": "string"},
                    "conditions": _ANY_LIST,
                },
            },
        },
    }
    subresources = {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.hpaPodSelector",
        },
    }
    return _crd(
        "leaderworkerset.x-k8s.io",
        "LeaderWorkerSet",
        "leaderworkersets",
        "v1",
        schema,
        subresources,
    )


def leaderworkerset(name: str, ns: str, replicas: int, size: int = 2) -> dict[str, Any]:
    """A LeaderWorkerSet of ``replicas`` groups of ``size`` pods (leader labels as selector)."""
    labels = {"app": name}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
    }
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {
                "size": size,
                "leaderTemplate": template,
                "workerTemplate": template,
            },
        },
    }


def httproute(
    name: str, ns: str, backends: list[str], weights: list[int] | None = None
) -> dict[str, Any]:
    """An HTTPRoute with one rule sending to ``backends`` (Services, port 8000)."""
    refs = [
        {"name": b, "port": 8000, "weight": (weights[i] if weights else 1)}
        for i, b in enumerate(backends)
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs}
            ],
        },
    }
