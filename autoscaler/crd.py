"""The ``SLOPolicy`` custom resource, defined once: pydantic models and the CRD made from them.

Why one definition: the schema the API server enforces and the validation the controller runs
must never drift apart. The controller parses every SLOPolicy with :class:`SLOPolicySpec`
(defaults applied, cross-field rules checked); ``sloscaler crd render`` turns the same models into
a *structural* OpenAPI v3 schema — every ``$ref`` inlined, ``Optional`` unwrapped instead of
``anyOf``, JSON Schema 2020's numeric ``exclusiveMinimum`` rewritten to OpenAPI 3.0's boolean form,
titles dropped — so ``kubectl apply`` rejects what the controller would reject, as early as it can.

Rules a schema cannot state (``maxReplicas ≥ minReplicas``, a ``scaleTargetRef`` whose kind
matches its group) are pydantic validators *and* CEL ``x-kubernetes-validations`` in the CRD, so a
real API server refuses them too; duplicate pool names are refused by ``x-kubernetes-list-type:
map``. The controller still checks all of them itself, because a policy may have been stored
under an older CRD: such a policy gets ``Ready=False`` naming the problem, never a crash.

Defaults live in the models, not in the CRD (the API server stores what the user wrote; the
controller reads it with defaults applied), and every description states its default and unit.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "sloscaler.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SLOPolicy"
PLURAL = "slopolicies"
SINGULAR = "slopolicy"
SHORT_NAMES = ("slop",)
CRD_NAME = f"{PLURAL}.{GROUP}"

Role = Literal["prefill", "decode", "aggregated", "expert-parallel"]
Mode = Literal["hpa", "direct", "advisory"]
TargetKind = Literal["Deployment", "StatefulSet", "LeaderWorkerSet"]
ConditionType = Literal["Ready", "ModelReady", "MetricsAvailable", "ScalingLimited"]
CONDITION_TYPES: tuple[ConditionType, ...] = (
    "Ready",
    "ModelReady",
    "MetricsAvailable",
    "ScalingLimited",
)

#: the API group/version each target kind lives in
TARGET_API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1",
}

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Objectives(_Model):
    """The SLO of the model: p90 latencies and the share of requests that must meet them."""

    ttft_p90_ms: float = Field(
        alias="ttftP90Ms", gt=0, le=3_600_000, description="p90 time to first token, ms"
    )
    tpot_p90_ms: float = Field(
        alias="tpotP90Ms", gt=0, le=60_000, description="p90 time per output token, ms"
    )
    attainment: float = Field(
        0.99,
        gt=0,
        le=1,
        description="share of requests that must meet both objectives (default 0.99)",
    )


class RequestClass(_Model):
    """A class of requests and its priority; negative priorities may be shed under overload."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="class name")
    priority: int = Field(
        ge=-1000, le=1000, description="higher is served first; negative = sheddable"
    )


class ScaleTargetRef(_Model):
    """The workload a pool scales through its ``scale`` subresource."""

    api_version: Literal["apps/v1", "leaderworkerset.x-k8s.io/v1"] = Field(
        description="apps/v1 (Deployment, StatefulSet) or leaderworkerset.x-k8s.io/v1"
    )
    kind: TargetKind = Field(description="Deployment, StatefulSet or LeaderWorkerSet")
    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="name in the namespace"
    )

    @model_validator(mode="after")
    def _kind_matches_group(self) -> ScaleTargetRef:
        want = TARGET_API_VERSIONS[self.kind]
        if self.api_version != want:
            raise ValueError(
                f"scaleTargetRef: kind {self.kind} is in {want}, not {self.api_version}"
            )
        return self


class Pool(_Model):
    """One variant serving the model: a role on an accelerator, backed by one workload."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.maxReplicas >= (has(self.minReplicas) ? self.minReplicas : 1)",
                    "message": "maxReplicas must be >= minReplicas",
                },
                {
                    "rule": "!has(self.scaleToZero) || !self.scaleToZero || "
                    "(has(self.minReplicas) && self.minReplicas == 0)",
                    "message": "scaleToZero needs minReplicas: 0",
                },
                {
                    "rule": "self.scaleTargetRef.kind == 'LeaderWorkerSet' ? "
                    "self.scaleTargetRef.apiVersion == 'leaderworkerset.x-k8s.io/v1' : "
                    "self.scaleTargetRef.apiVersion == 'apps/v1'",
                    "message": "scaleTargetRef.apiVersion does not match its kind",
                },
            ]
        }
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="pool name, unique in the policy",
    )
    role: Role = Field(description="prefill, decode, aggregated or expert-parallel")
    accelerator: str = Field(
        min_length=1, max_length=63, description="accelerator type, e.g. H100 (one per pool)"
    )
    gpus_per_replica: int = Field(
        1, ge=1, le=1024, description="GPUs per replica, or per EP unit (default 1)"
    )
    cost_per_gpu_hour: float = Field(
        0.0, ge=0, le=1000, description="price of one GPU-hour, any currency (default 0)"
    )
    scale_target_ref: ScaleTargetRef = Field(description="the workload this pool scales")
    min_replicas: int = Field(1, ge=0, le=10_000, description="lower bound (default 1)")
    max_replicas: int = Field(ge=0, le=10_000, description="upper bound")
    scale_to_zero: bool = Field(
        False, description="allow 0 replicas after proven idleness; needs minReplicas 0"
    )
    startup_seconds: float = Field(
        120.0,
        ge=0,
        le=86_400,
        description="time a new replica needs to become ready, s (default 120); the forecast "
        "horizon",
    )
    backend_ref: str | None = Field(
        None,
        max_length=253,
        description="name of this pool's backendRef in the gateway HTTPRoute "
        "(default: scaleTargetRef.name)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Pool:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"pool {self.name}: maxReplicas {self.max_replicas} < minReplicas "
                f"{self.min_replicas}"
            )
        if self.scale_to_zero and self.min_replicas != 0:
            raise ValueError(f"pool {self.name}: scaleToZero needs minReplicas: 0")
        return self

    @property
    def route_backend(self) -> str:
        return self.backend_ref or self.scale_target_ref.name


class RouteRef(_Model):
    """The Gateway API HTTPRoute whose ``backendRefs[].weight`` the controller sets."""

    group: Literal["gateway.networking.k8s.io"] = Field(
        "gateway.networking.k8s.io", description="API group (default gateway.networking.k8s.io)"
    )
    kind: Literal["HTTPRoute"] = Field("HTTPRoute", description="route kind (default HTTPRoute)")
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="route")
    namespace: str | None = Field(
        None, max_length=63, pattern=DNS_LABEL, description="default: the policy's namespace"
    )


class Behavior(_Model):
    """Normalization knobs (HPA's defaults unless set)."""

    scale_up_stabilization_seconds: float = Field(
        0.0, ge=0, le=3600, description="lowest recommendation kept for scale-up, s (default 0)"
    )
    scale_down_stabilization_seconds: float = Field(
        300.0,
        ge=0,
        le=3600,
        description="highest recommendation kept for scale-down, s (default 300)",
    )
    idle_before_zero_seconds: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="proven idleness before scaling to zero, s (default 600)",
    )
    headroom: float = Field(
        0.10, ge=0, lt=1, description="fraction of capacity kept free (default 0.10)"
    )


class SLOPolicySpec(_Model):
    """What the user asks: serve ``model`` within ``objectives`` using these pools."""

    model: str = Field(min_length=1, max_length=253, description="served model name")
    objectives: Objectives = Field(description="the SLO")
    request_classes: list[RequestClass] = Field(
        default_factory=list, max_length=32, description="request classes and their priority"
    )
    pools: list[Pool] = Field(
        min_length=1,
        max_length=64,
        description="variants serving the model",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    mode: Mode = Field(
        "hpa",
        description="hpa: publish desired replicas for an HPA (and do 0<->1 itself); direct: "
        "write the scale subresource; advisory: status, metrics and events only (default hpa)",
    )
    gateway: RouteRef | None = Field(None, description="route whose backend weights to set")
    behavior: Behavior = Field(default_factory=Behavior, description="normalization knobs")

    @model_validator(mode="after")
    def _unique_pools(self) -> SLOPolicySpec:
        seen: set[str] = set()
        for p in self.pools:
            if p.name in seen:
                raise ValueError(f"duplicate pool name {p.name!r}")
            seen.add(p.name)
        return self


class Condition(_Model):
    """``metav1.Condition``."""

    type: ConditionType = Field(description="Ready, ModelReady, MetricsAvailable, ScalingLimited")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown")
    observed_generation: int | None = Field(None, ge=0, description="generation it describes")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"}, description="when status last changed"
    )
    reason: str = Field(
        min_length=1, max_length=1024, pattern=REASON_PATTERN, description="CamelCase reason"
    )
    message: str = Field(max_length=32768, description="human-readable detail")


class Recommendation(_Model):
    """One raw recommendation inside a pool's stabilization windows."""

    time: str = Field(json_schema_extra={"format": "date-time"}, description="when it was made")
    replicas: int = Field(ge=0, description="replicas recommended before normalization")
    capacity_rps: float | None = Field(
        None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "requests/s per replica it was sized with; the scale-down window holds this capacity, "
            "not the replica count (absent: a hold, kept as replicas)"
        ),
    )


class PoolStatus(_Model):
    """What the controller saw and decided for one pool at its last tick."""

    name: str = Field(description="pool name")
    current_replicas: int = Field(ge=0, description="spec.replicas of the target")
    ready_replicas: int = Field(ge=0, description="ready pods of the target")
    desired_replicas: int = Field(ge=0, description="replicas after normalization")
    reason: str = Field(description="decision reason (policies.reasons.Reason)")
    message: str = Field("", description="why, in words")
    predicted_ttft_p90_ms: float | None = Field(
        None, alias="predictedTTFTP90Ms", description="predicted p90 TTFT at desired, ms"
    )
    predicted_tpot_p90_ms: float | None = Field(
        None, alias="predictedTPOTP90Ms", description="predicted p90 TPOT at desired, ms"
    )
    capacity_rps: float | None = Field(None, description="requests/s one replica serves at SLO")
    capacity_scale: float | None = Field(
        None, description="the error budget's factor in capacityRps, learned from attainment"
    )
    demand_rps: float | None = Field(None, description="upper forecast of demand, requests/s")
    routing_weight: float | None = Field(None, ge=0, le=1, description="share of the route")
    recommendations: list[Recommendation] = Field(
        default_factory=list,
        description=(
            "the recommendations within the stabilization windows that can still decide one; "
            "a new leader restores them, so a restart does not shorten a window"
        ),
    )


class SLOPolicyStatus(_Model):
    """The controller's report (``/status`` subresource)."""

    observed_generation: int | None = Field(None, ge=0, description="spec generation acted on")
    last_tick_time: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="time of the last tick"
    )
    pools: list[PoolStatus] = Field(
        default_factory=list,
        description="per-pool decision",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, ModelReady, MetricsAvailable, ScalingLimited",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


# --- the structural schema ------------------------------------------------------------------

_DROP = {"title", "default"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite a pydantic JSON schema node into a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [_structural(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot make a structural schema of anyOf {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields; "false" is not allowed
        elif key == "const":
            out["enum"] = [value]  # OpenAPI 3.0 (and so Kubernetes) has no "const"
        elif key == "description":
            out[key] = " ".join(str(value).replace("``", "").split())
        else:
            out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    first = [k for k in ("type", "format", "description") if k in out]
    return {**{k: out[k] for k in first}, **{k: v for k, v in out.items() if k not in first}}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return dict(_structural(raw, defs))


def _cr_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "SLOPolicy: scale a model's serving pools to meet its latency SLO at the "
        "lowest cost.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(SLOPolicySpec),
            "status": openapi_schema(SLOPolicyStatus),
        },
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "priority": 1,
    },
    {
        "name": "Limited",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="ScalingLimited")].status',
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd_manifest() -> dict[str, Any]:
    """The ``CustomResourceDefinition`` of SLOPolicy (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "sloscaler"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["sloscaler"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": _cr_schema()},
                }
            ],
        },
    }


HEADER = "# Generated by `sloscaler crd render` from autoscaler/crd.py — do not edit by hand.\n"


def render_crd_yaml() -> str:
    """The CRD as YAML, as checked in under ``deploy/crd/``."""
    return HEADER + yaml.safe_dump(crd_manifest(), sort_keys=False, width=100)


def parse_spec(spec: Any) -> SLOPolicySpec:
    """Validate a stored ``spec`` (raises ``pydantic.ValidationError``)."""
    return SLOPolicySpec.model_validate(spec)


def validation_message(error: Exception) -> str:
    """One line naming the field and the problem, for conditions and events."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        parts = []
        for e in error.errors()[:3]:
            loc = ".".join(str(x) for x in e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"spec.{loc}: {msg}" if loc else f"spec: {msg}")
        return "; ".join(parts)
    return str(error)
