"""An in-memory Kubernetes API server that speaks real HTTP — a *fake*, for tests and benchmarks.

Why: no real API server runs on a developer machine or in CI here, and mocking the ``kubernetes``
client would test our assumptions about it instead of the wire. This fake serves the REST paths
the official client calls (``/api/v1/…``, ``/apis/{group}/{version}/…``) on 127.0.0.1 with the
semantics controllers depend on:

* discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/{group}/{version}``, ``/version``);
* namespaced (and cluster-scoped) create/get/list/update/patch/delete for Pods, Events,
  Namespaces, Deployments, StatefulSets, Leases, CustomResourceDefinitions — and for every custom
  resource a created CRD defines (SLOPolicies, Gateway API HTTPRoutes, LeaderWorkerSets);
* ``metadata.resourceVersion`` from one global counter, 409 ``Conflict`` on a stale update,
  409 ``AlreadyExists``, 404 ``NotFound``, ``metadata.generation`` bumped on spec changes;
* JSON merge patch, JSON patch, and strategic merge patch (applied as merge patch: correct for
  scale, status and metadata, which is what sloscaler patches);
* ``status`` subresources (a main-resource write keeps the stored status, a status write keeps
  the stored spec) and ``scale`` subresources (``autoscaling/v1`` Scale, CRDs' replica and
  label-selector paths);
* watch (``?watch=true``, chunked JSON lines, ``resourceVersion`` resume, 410 ``Gone`` when
  compacted) for every resource;
* every written object validated — built-ins against the real Kubernetes OpenAPI schemas
  (``kubernetes-validate``), custom resources against their CRD's schema (with pruning) — and
  refused with 422 and a ``Status`` body when invalid;
* ``TokenReview`` and ``SubjectAccessReview`` (``POST``, validated the same way, answered and not
  stored) from :attr:`FakeApiServer.auth`, a token table and allow rules
  (:mod:`autoscaler.k8s.fake_reviews`) — what a server that delegates to the API server asks.

Not covered (documented in ``docs/controller.md``): authentication and authorization of its own
callers, admission webhooks, CEL validation rules, defaulting, field selectors beyond
``metadata.name`` and ``metadata.namespace``, server-side apply, garbage collection, and the
controllers of kube-controller-manager — :meth:`FakeStore.run_workload_controllers` stands in
for the Deployment/StatefulSet/LeaderWorkerSet controllers and the kubelet when a test needs pods.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autoscaler.clock import Clock, WallClock
from autoscaler.k8s.fake_reviews import FakeAuthorities
from autoscaler.k8s.patch import PatchError, json_patch, merge_patch
from autoscaler.k8s.pods import pod_ready
from autoscaler.k8s.reviews import Identity, RequestAttributes
from autoscaler.k8s.schema import CustomSchema, FieldError, validate_builtin
from autoscaler.k8s.selectors import (
    SelectorError,
    parse_selector,
    selector_from_label_selector,
)
from autoscaler.k8s.timestamps import rfc3339

Obj = dict[str, Any]
WATCH_LOG = 20_000  # watch events kept for resuming; older resourceVersions get 410 Gone


class ApiError(Exception):
    """An API failure with its HTTP code, ``Status.reason`` and ``Status.details``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclass(frozen=True, slots=True)
class ScalePaths:
    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None  # None: from .spec.selector (Deployment, StatefulSet)


@dataclass(slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False
    scale: ScalePaths | None = None
    schema: CustomSchema | None = None  # custom resources only
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def qualified(self) -> str:
        return self.key


BUILTINS = (
    ResourceType("", "v1", "pods", "Pod", status=True, short_names=("po",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("apps", "v1", "deployments", "Deployment", status=True, scale=ScalePaths()),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", status=True, scale=ScalePaths()),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
        short_names=("crd",),
    ),
)


#: create-only kinds that are answered, never stored (``POST`` only; no name needed)
REVIEWS = (
    ResourceType("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        namespaced=False,
    ),
)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _get_path(obj: Any, path: str) -> Any:
    node = obj
    for part in path.strip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _section(field_path: str) -> str:
    """``spec.pools[1].name`` → ``spec``."""
    return field_path.split(".", 1)[0].split("[", 1)[0]


def _changed_sections(obj: Obj, old: Obj) -> Obj:
    """``obj`` with only its identity (apiVersion, kind, metadata) and the top-level sections
    that differ from ``old``."""
    keep = ("apiVersion", "kind", "metadata")
    return {k: v for k, v in obj.items() if k in keep or v != old.get(k)}


def _spec_part(obj: Obj) -> Obj:
    """What ``metadata.generation`` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@dataclass(slots=True)
class _Entry:
    obj: Obj
    raw: bytes


@dataclass(frozen=True, slots=True)
class WatchEvent:
    rv: int
    key: str
    namespace: str
    type: str
    labels: dict[str, str]
    name: str
    raw: bytes  # the object


@dataclass(slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    content_type: str
    code: int = 0


@dataclass(slots=True)
class _Hook:
    method: str
    pattern: re.Pattern[str]
    action: Callable[[FakeStore], ApiError | None]
    times: int


def typed_body(rt: ResourceType, body: Any) -> tuple[Obj, dict[str, Any]]:
    """A copy of a request body, with its metadata, checked as the API server does: a JSON
    object whose metadata is an object, of the endpoint's apiVersion and kind (filled in when
    absent)."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body is not a JSON object")
    obj = copy.deepcopy(body)
    md = obj.setdefault("metadata", {})
    if not isinstance(md, dict):
        raise ApiError(400, "BadRequest", "metadata must be an object")
    obj.setdefault("apiVersion", rt.api_version)  # the endpoint's kind, as the server does
    obj.setdefault("kind", rt.kind)
    if obj.get("apiVersion") != rt.api_version or obj.get("kind") != rt.kind:
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) and kind "
            f"({obj.get('kind')}) do not match {rt.api_version} {rt.kind}",
        )
    return obj, md


def invalid_error(title: str, details: dict[str, Any], errors: list[FieldError]) -> ApiError:
    """The API server's 422 ``Invalid`` Status: ``<title> is invalid: field: message, …`` with
    one ``FieldValueInvalid`` cause per error."""
    causes = [
        {"reason": "FieldValueInvalid", "message": e.message, "field": e.field} for e in errors
    ]
    summary = ", ".join(f"{e.field}: {e.message}" for e in errors)
    return ApiError(422, "Invalid", f"{title} is invalid: {summary}", {**details, "causes": causes})


class FakeStore:
    """The object store and API semantics; thread-safe. The HTTP layer only routes to it."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or WallClock()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = itertools.count(1)
        self._uids = itertools.count(1)
        self._names = itertools.count(1)
        self.last_rv = 0
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self._objects: dict[str, dict[str, dict[str, _Entry]]] = {}
        self._log: list[WatchEvent] = []
        self._log_rvs: list[int] = []
        self.closing = False
        for rt in BUILTINS:
            self.register(rt)

    # --- registry ---------------------------------------------------------------------------

    def register(self, rt: ResourceType) -> None:
        with self._lock:
            self.types[(rt.group, rt.version, rt.plural)] = rt
            self._objects.setdefault(rt.key, {})

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.types.get((group, version, plural))
        if rt is None:
            gv = f"{group}/{version}" if group else version
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural} in {gv})",
            )
        return rt

    def find_kind(self, api_version: str, kind: str) -> ResourceType:
        for rt in self.types.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise ApiError(404, "NotFound", f"no kind {kind} is registered for {api_version}")

    # --- internals --------------------------------------------------------------------------

    def _now(self) -> str:
        return rfc3339(self.clock.now())

    def _bucket(self, rt: ResourceType, ns: str) -> dict[str, _Entry]:
        return self._objects[rt.key].setdefault(ns if rt.namespaced else "", {})

    def _not_found(self, rt: ResourceType, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{rt.qualified()} "{name}" not found',
            {"name": name, "group": rt.group, "kind": rt.plural},
        )

    def _conflict(self, rt: ResourceType, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.qualified()} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            {"name": name, "group": rt.group, "kind": rt.plural},
        )

    def _invalid(self, rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
        return invalid_error(
            f'{rt.kind} "{name}"', {"name": name, "group": rt.group, "kind": rt.kind}, errors
        )

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> Obj:
        """Prune (custom resources), then validate; raise 422 on errors. On an update, errors in
        a top-level section (``spec``, ``status``) that the write left unchanged are ratcheted
        — accepted, as CRD validation ratcheting (on by default since 1.30) does. So on an
        update only the sections the write changed are validated: the errors of the others would
        be dropped anyway (and a status write does not re-validate a policy's whole spec)."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        schema = rt.schema
        if schema is not None:
            obj = schema.prune(obj)
        checked = obj if old is None else _changed_sections(obj, old)
        errors = schema.validate(checked) if schema is not None else validate_builtin(checked)
        if rt.scale is not None:  # what the Go validation adds to the OpenAPI schema
            replicas = _get_path(obj, rt.scale.spec_replicas)
            if isinstance(replicas, int) and replicas < 0:
                errors.append(
                    FieldError(
                        rt.scale.spec_replicas.strip("."),
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                )
        if old is not None:
            errors = [e for e in errors if obj.get(_section(e.field)) != old.get(_section(e.field))]
        if errors:
            raise self._invalid(rt, name, errors)
        return obj

    def _record(self, rt: ResourceType, ns: str, kind: str, entry: _Entry) -> None:
        md = entry.obj["metadata"]
        rv = int(md["resourceVersion"])
        self._log.append(
            WatchEvent(rv, rt.key, ns, kind, dict(md.get("labels") or {}), md["name"], entry.raw)
        )
        self._log_rvs.append(rv)
        if len(self._log) > 2 * WATCH_LOG:
            del self._log[:WATCH_LOG]
            del self._log_rvs[:WATCH_LOG]
        self._changed.notify_all()

    def _store(self, rt: ResourceType, ns: str, obj: Obj, kind: str) -> _Entry:
        rv = next(self._rv)
        self.last_rv = rv
        obj["metadata"]["resourceVersion"] = str(rv)
        entry = _Entry(obj, _dumps(obj))
        self._bucket(rt, ns)[obj["metadata"]["name"]] = entry
        self._record(rt, ns, kind, entry)
        if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
            self._install_crd(obj)
        return entry

    def _prepare_metadata(self, rt: ResourceType, ns: str, obj: Obj) -> Obj:
        obj, md = typed_body(rt, obj)
        if rt.namespaced:
            if md.get("namespace", ns) != ns:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        return obj

    # --- verbs ------------------------------------------------------------------------------

    def create(self, rt: ResourceType, ns: str, body: Obj, *, validate: bool = True) -> bytes:
        with self._lock:
            obj = self._prepare_metadata(rt, ns, body)
            md = obj["metadata"]
            if not md.get("name") and md.get("generateName"):
                md["name"] = f"{md['generateName']}{next(self._names):05x}"
            md.pop("resourceVersion", None)
            if validate:
                obj = self._validate(rt, obj)
                md = obj["metadata"]
            name = md["name"]
            if name in self._bucket(rt, ns):
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{rt.qualified()} "{name}" already exists',
                    {"name": name, "group": rt.group, "kind": rt.plural},
                )
            md["uid"] = str(uuid.UUID(int=next(self._uids)))
            md["creationTimestamp"] = self._now()
            md["generation"] = 1
            if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
                obj["status"] = self._crd_status(obj)
            return self._store(rt, ns, obj, "ADDED").raw

    def get_entry(self, rt: ResourceType, ns: str, name: str) -> _Entry:
        with self._lock:
            entry = self._bucket(rt, ns).get(name)
            if entry is None:
                raise self._not_found(rt, name)
            return entry

    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        """A copy of the stored object."""
        return copy.deepcopy(self.get_entry(rt, ns, name).obj)

    def list(
        self,
        rt: ResourceType,
        ns: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> bytes:
        try:
            sel = parse_selector(label_selector)
        except SelectorError as e:
            raise ApiError(400, "BadRequest", f"unable to parse labelSelector: {e}") from None
        fields = _parse_fields(field_selector)
        with self._lock:
            buckets = (
                [self._bucket(rt, ns)]
                if (ns is not None and rt.namespaced)
                else list(self._objects[rt.key].values())
            )
            raws = [
                e.raw
                for b in buckets
                for e in b.values()
                if (not sel.requirements or sel.matches(e.obj["metadata"].get("labels")))
                and _fields_match(e.obj, fields)
            ]
            rv = self.last_rv
        head = _dumps(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
            }
        )
        return head[:-1] + b',"items":[' + b",".join(raws) + b"]}"

    def update(
        self, rt: ResourceType, ns: str, name: str, body: Obj, *, subresource: str = ""
    ) -> bytes:
        with self._lock:
            current = self.get_entry(rt, ns, name).obj
            obj = self._prepare_metadata(rt, ns, body)
            md = obj["metadata"]
            if md.get("name", name) != name:
                raise ApiError(
                    400, "BadRequest", "the name of the object does not match the name on the URL"
                )
            md["name"] = name
            rv = md.get("resourceVersion")
            cur_md = current["metadata"]
            if rv and rv != cur_md["resourceVersion"]:
                raise self._conflict(rt, name)
            if md.get("uid") and md["uid"] != cur_md["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: "
                    f"{md['uid']}, UID in object meta: {cur_md['uid']}",
                )
            return self._replace(rt, ns, current, obj, subresource)

    def _replace(
        self, rt: ResourceType, ns: str, current: Obj, obj: Obj, subresource: str
    ) -> bytes:
        cur_md = current["metadata"]
        if subresource == "status":
            merged = copy.deepcopy(current)
            if "status" in obj:
                merged["status"] = obj["status"]
            else:
                merged.pop("status", None)
            obj = merged
        else:
            md = obj["metadata"]
            for k in ("uid", "creationTimestamp", "generation"):
                md[k] = cur_md[k]
            if rt.status:
                if "status" in current:
                    obj["status"] = copy.deepcopy(current["status"])
                else:
                    obj.pop("status", None)
        obj = self._validate(rt, obj, current)
        if _spec_part(obj) != _spec_part(current):
            obj["metadata"]["generation"] = cur_md["generation"] + 1
        if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
            obj["status"] = self._crd_status(obj)
        return self._store(rt, ns, obj, "MODIFIED").raw

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
    ) -> bytes:
        with self._lock:
            current = self.get_entry(rt, ns, name).obj
            patched = _apply_patch(current, patch, content_type)
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "a patch must leave an object")
            md = patched.setdefault("metadata", {})
            rv = md.get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise self._conflict(rt, name)
            md["resourceVersion"] = current["metadata"]["resourceVersion"]
            obj = self._prepare_metadata(rt, ns, patched)
            return self._replace(rt, ns, current, obj, subresource)

    def delete(self, rt: ResourceType, ns: str, name: str) -> bytes:
        with self._lock:
            bucket = self._bucket(rt, ns)
            entry = bucket.pop(name, None)
            if entry is None:
                raise self._not_found(rt, name)
            obj = copy.deepcopy(entry.obj)
            rv = next(self._rv)
            self.last_rv = rv
            obj["metadata"]["resourceVersion"] = str(rv)
            gone = _Entry(obj, _dumps(obj))
            self._record(rt, ns, "DELETED", gone)
            if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
                self._uninstall_crd(obj)
            return gone.raw

    # --- scale subresource ------------------------------------------------------------------

    def _scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        assert rt.scale is not None
        paths = rt.scale
        if paths.label_selector is None:
            selector = selector_from_label_selector(_get_path(obj, ".spec.selector"))
        else:
            selector = _get_path(obj, paths.label_selector) or ""
        md = obj["metadata"]
        status: Obj = {"replicas": int(_get_path(obj, paths.status_replicas) or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": md["name"],
                "namespace": md.get("namespace"),
                "uid": md["uid"],
                "resourceVersion": md["resourceVersion"],
                "creationTimestamp": md["creationTimestamp"],
            },
            "spec": {"replicas": int(_get_path(obj, paths.spec_replicas) or 0)},
            "status": status,
        }

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> bytes:
        if rt.scale is None:
            raise ApiError(404, "NotFound", f"{rt.qualified()} has no scale subresource")
        with self._lock:
            return _dumps(self._scale_of(rt, self.get_entry(rt, ns, name).obj))

    def write_scale(
        self, rt: ResourceType, ns: str, name: str, body: Any, content_type: str | None
    ) -> bytes:
        if rt.scale is None:
            raise ApiError(404, "NotFound", f"{rt.qualified()} has no scale subresource")
        with self._lock:
            current = self.get_entry(rt, ns, name).obj
            scale = self._scale_of(rt, current)
            new = body if content_type is None else _apply_patch(scale, body, content_type)
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "a Scale must be an object")
            new = {"apiVersion": "autoscaling/v1", "kind": "Scale", **new}
            errors = validate_builtin(
                {**new, "metadata": {**new.get("metadata", {}), "name": name}}
            )
            if errors:
                raise self._invalid(rt, name, errors)
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise self._conflict(rt, name)
            replicas = (new.get("spec") or {}).get("replicas", 0)
            obj = copy.deepcopy(current)
            _set_path(obj, rt.scale.spec_replicas, int(replicas))
            self._replace(rt, ns, current, obj, "")
            return _dumps(self._scale_of(rt, self.get_entry(rt, ns, name).obj))

    # --- watch ------------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        ns: str | None,
        resource_version: str | None,
        label_selector: str | None,
        timeout_s: float,
        wait: Callable[[threading.Condition, float], None],
    ) -> Iterator[bytes]:
        """JSON lines of watch events after ``resource_version`` (all current objects as ADDED
        first when it is empty or "0"), until ``timeout_s`` or the server closes."""
        sel = parse_selector(label_selector)

        def wanted(e: WatchEvent) -> bool:
            if e.key != rt.key or (ns is not None and rt.namespaced and e.namespace != ns):
                return False
            return not sel.requirements or sel.matches(e.labels)

        gone: ApiError | None = None
        with self._lock:
            if not resource_version or resource_version == "0":
                cursor = self.last_rv
                initial = [
                    b'{"type":"ADDED","object":' + raw + b"}\n"
                    for raw in _items(self.list(rt, ns, label_selector))
                ]
            else:
                cursor = int(resource_version)
                initial = []
                oldest = self._log_rvs[0] if self._log_rvs else self.last_rv + 1
                if cursor < oldest - 1 and cursor < self.last_rv:
                    gone = ApiError(
                        410, "Expired", f"too old resource version: {cursor} ({oldest - 1})"
                    )
        if gone is not None:
            yield b'{"type":"ERROR","object":' + _dumps(gone.status()) + b"}\n"
            return
        yield from initial
        waited = 0.0
        while not self.closing and waited < timeout_s:
            with self._lock:
                i = bisect.bisect_right(self._log_rvs, cursor)
                events = [e for e in self._log[i:] if wanted(e)]
                if self._log_rvs:
                    cursor = max(cursor, self._log_rvs[-1])
                if not events:
                    wait(self._changed, 0.2)
                    waited += 0.2
                    continue
            for e in events:
                yield b'{"type":"' + e.type.encode() + b'","object":' + e.raw + b"}\n"

    # --- CRDs -------------------------------------------------------------------------------

    def _crd_status(self, crd: Obj) -> Obj:
        spec = crd.get("spec", {})
        now = self._now()
        return {
            "acceptedNames": spec.get("names", {}),
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": r,
                    "message": m,
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }

    def _install_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        versions = [v for v in spec["versions"] if v.get("served")]
        for v in versions:
            subs = v.get("subresources") or {}
            scale = subs.get("scale")
            rt = ResourceType(
                group=spec["group"],
                version=v["name"],
                plural=spec["names"]["plural"],
                kind=spec["names"]["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                status="status" in subs,
                scale=ScalePaths(
                    scale["specReplicasPath"],
                    scale["statusReplicasPath"],
                    scale.get("labelSelectorPath") or "",
                )
                if scale
                else None,
                schema=CustomSchema(v["schema"]["openAPIV3Schema"]),
                short_names=tuple(spec["names"].get("shortNames") or ()),
            )
            self.register(rt)

    def _uninstall_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        for v in spec["versions"]:
            rt = self.types.pop((spec["group"], v["name"], spec["names"]["plural"]), None)
            if rt is not None:
                self._objects.pop(rt.key, None)

    # --- helpers for tests (not part of the API) ----------------------------------------------

    def put(self, obj: Obj, *, validate: bool = True) -> Obj:
        """Create ``obj`` (by its apiVersion/kind) without HTTP; returns the stored copy."""
        rt = self.find_kind(obj["apiVersion"], obj["kind"])
        ns = (obj.get("metadata") or {}).get("namespace", "default") if rt.namespaced else ""
        return dict(json.loads(self.create(rt, ns, obj, validate=validate)))

    def put_unvalidated(self, obj: Obj) -> Obj:
        """Store an object the schema would refuse — as one stored under an older CRD."""
        return self.put(obj, validate=False)

    def bump(self, api_version: str, kind: str, ns: str, name: str) -> None:
        """Change an object's resourceVersion as a concurrent writer would (an annotation)."""
        rt = self.find_kind(api_version, kind)
        with self._lock:
            obj = self.get(rt, ns, name)
            ann = obj["metadata"].setdefault("annotations", {})
            ann["fake.sloscaler.dev/touched"] = str(
                int(ann.get("fake.sloscaler.dev/touched", 0)) + 1
            )
            self._store(rt, ns, obj, "MODIFIED")

    def write_status(self, api_version: str, kind: str, ns: str, name: str, status: Obj) -> None:
        rt = self.find_kind(api_version, kind)
        with self._lock:
            obj = self.get(rt, ns, name)
            obj["status"] = status
            self.update(rt, ns, name, obj, subresource="status")

    def run_workload_controllers(self, ready: bool = True) -> None:
        """Stand in for kube-controller-manager and the kubelet: make each Deployment,
        StatefulSet and LeaderWorkerSet have ``spec.replicas`` pods (named ``{name}-{i}``, with
        the template's labels, Ready = ``ready`` for new pods) and a matching status."""
        with self._lock:
            for rt in list(self.types.values()):
                if rt.scale is None:
                    continue
                for ns, bucket in list(self._objects[rt.key].items()):
                    for name in list(bucket):
                        self._reconcile_workload(rt, ns, name, ready)

    def _reconcile_workload(self, rt: ResourceType, ns: str, name: str, ready: bool) -> None:
        assert rt.scale is not None
        obj = self.get(rt, ns, name)
        want = int(_get_path(obj, rt.scale.spec_replicas) or 0)
        labels = dict(_get_path(obj, ".spec.template.metadata.labels") or {})
        if not labels:
            labels = dict(
                _get_path(obj, ".spec.leaderWorkerTemplate.leaderTemplate.metadata.labels")
                or {"app": name}
            )
        pods_rt = self.types[("", "v1", "pods")]
        prefix = f"{name}-"
        pods = self._bucket(pods_rt, ns)
        mine = sorted(
            (p for p in pods if p.startswith(prefix) and p[len(prefix) :].isdigit()),
            key=lambda p: int(p[len(prefix) :]),
        )
        for pod in mine[want:]:
            self.delete(pods_rt, ns, pod)
        for i in range(len(mine), want):
            self.create(pods_rt, ns, make_pod(f"{prefix}{i}", ns, labels, ready), validate=False)
        ready_n = sum(
            1
            for p in list(pods)
            if p.startswith(prefix) and p[len(prefix) :].isdigit() and pod_ready(pods[p].obj)
        )
        status = dict(obj.get("status") or {})
        status.update({"replicas": want, "readyReplicas": ready_n})
        if rt.scale.label_selector:
            _set_path(
                status,
                rt.scale.label_selector.removeprefix(".status"),
                ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            )
        if status != obj.get("status"):
            obj["status"] = status
            self.update(rt, ns, name, obj, subresource="status")

    def set_pod_ready(self, ns: str, name: str, ready: bool) -> None:
        rt = self.types[("", "v1", "pods")]
        with self._lock:
            pod = self.get(rt, ns, name)
            pod["status"] = make_pod(name, ns, {}, ready)["status"]
            self.update(rt, ns, name, pod, subresource="status")


def _items(list_raw: bytes) -> list[bytes]:
    return [_dumps(i) for i in json.loads(list_raw)["items"]]


def _parse_fields(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or k.strip() not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", f"field selector {part!r} is not supported")
        out[k.strip()] = v.strip().lstrip("=")
    return out


def _fields_match(obj: Obj, fields: dict[str, str]) -> bool:
    md = obj["metadata"]
    return all(md.get(k.split(".", 1)[1]) == v for k, v in fields.items())


def _apply_patch(current: Obj, patch: Any, content_type: str) -> Any:
    ctype = content_type.split(";", maxsplit=1)[0].strip()
    try:
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise PatchError("a merge patch is a JSON object")
            return merge_patch(current, patch)
        if ctype == "application/json-patch+json":
            return json_patch(current, patch)
    except PatchError as e:
        raise ApiError(422, "Invalid", f"the patch cannot be applied: {e}") from None
    raise ApiError(415, "UnsupportedMediaType", f"the media type {ctype!r} is not supported")


# --- TokenReview and SubjectAccessReview -------------------------------------------------------


def _review_type(path: str) -> ResourceType | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) != 4 or parts[0] != "apis":
        return None
    return next((rt for rt in REVIEWS if [rt.group, rt.version, rt.plural] == parts[1:]), None)


def _review_errors(rt: ResourceType, obj: Obj) -> list[FieldError]:
    """What the API server's own validation adds to the schema for a SubjectAccessReview."""
    if rt.kind != "SubjectAccessReview":
        return []
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        errors.append(
            FieldError(
                "spec.nonResourceAttributes",
                "Invalid value: cannot be specified in combination with resourceAttributes",
            )
        )
    if resource is None and non_resource is None:
        errors.append(
            FieldError(
                "spec.resourceAttributes",
                "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must "
                "be specified",
            )
        )
    if not spec.get("user") and not spec.get("groups"):
        errors.append(
            FieldError(
                "spec.user", 'Invalid value: "": at least one of user or group must be specified'
            )
        )
    return errors


def answer_review(rt: ResourceType, body: Any, auth: FakeAuthorities) -> bytes:
    """Validate a TokenReview or SubjectAccessReview as the API server does, and return it with
    the ``status`` that ``auth`` gives (the object is not stored)."""
    obj, md = typed_body(rt, body)
    if md.get("namespace"):
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    errors = validate_builtin(obj, named=False) or _review_errors(rt, obj)
    if errors:
        details = {"group": rt.group, "kind": rt.kind}
        raise invalid_error(f'{rt.kind}.{rt.group} ""', details, errors)
    spec = obj["spec"]
    if rt.kind == "TokenReview":
        token = spec.get("token") or ""
        if not token:
            raise ApiError(400, "BadRequest", "token is required for TokenReview in authentication")
        who = auth.authenticate(token)
        if who is None:
            obj["status"] = {"user": {}, "error": "invalid bearer token"}
        else:
            user: Obj = {"username": who.user, "groups": list(who.groups)}
            if who.uid:
                user["uid"] = who.uid
            if who.extra:
                user["extra"] = {k: list(v) for k, v in who.extra}
            obj["status"] = {"authenticated": True, "user": user}
            if spec.get("audiences"):  # every token of the table is valid for any audience
                obj["status"]["audiences"] = list(spec["audiences"])
        return _dumps(obj)
    who = Identity.of(
        str(spec.get("user") or ""),
        [str(g) for g in spec.get("groups") or ()],
        str(spec.get("uid") or ""),
        spec.get("extra") or {},
    )
    if spec.get("resourceAttributes") is not None:
        r = spec["resourceAttributes"]
        attributes = RequestAttributes(
            verb=str(r.get("verb") or ""),
            path="",
            group=str(r.get("group") or ""),
            version=str(r.get("version") or ""),
            resource=str(r.get("resource") or ""),
            namespace=str(r.get("namespace") or ""),
            name=str(r.get("name") or ""),
        )
    else:
        n = spec["nonResourceAttributes"]
        attributes = RequestAttributes(verb=str(n.get("verb") or ""), path=str(n.get("path") or ""))
    decision = auth.authorize(who, attributes)
    obj["status"] = {"allowed": decision.allowed}
    if decision.reason:
        obj["status"]["reason"] = decision.reason
    return _dumps(obj)


def make_pod(name: str, ns: str, labels: dict[str, str], ready: bool) -> Obj:
    """A minimal valid Pod (one container) with a Ready condition."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def make_deployment(
    name: str,
    ns: str,
    replicas: int,
    labels: dict[str, str] | None = None,
    kind: str = "Deployment",
) -> Obj:
    """A minimal valid Deployment (or StatefulSet) selecting ``labels``."""
    labels = labels or {"app": name}
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": spec,
    }


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class _Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    _raw_body = b""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, code: int, body: bytes, record: RequestRecord) -> None:
        record.code = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        raw = self._raw_body
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise ApiError(400, "BadRequest", f"the body is not valid JSON: {e}") from None

    def _handle(self, method: str) -> None:
        # read the whole request first: a body left unread (an injected failure, a route that
        # refuses before parsing it) would be taken for the next request on this connection
        n = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(n) if n else b""
        url = urlsplit(self.path)
        record = RequestRecord(
            method, url.path, url.query, (self.headers.get("Content-Type") or "").split(";")[0]
        )
        self.server.fake.requests.append(record)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            hooked = self.server.fake._run_hooks(method, url.path)
            if hooked is not None:
                raise hooked
            if method == "GET" and query.get("watch") in ("true", "1"):
                self._watch(url.path, query, record)
                return
            code, body = self._dispatch(method, url.path, query)
        except ApiError as e:
            code, body = e.code, _dumps(e.status())
        self._send(code, body, record)

    def _watch(self, path: str, query: dict[str, str], record: RequestRecord) -> None:
        route = self._route(path)
        if route.name is not None:
            raise ApiError(405, "MethodNotAllowed", "watch a collection, not an object")
        store = self.server.fake.store
        try:
            parse_selector(query.get("labelSelector"))
        except SelectorError as e:
            raise ApiError(400, "BadRequest", f"unable to parse labelSelector: {e}") from None
        timeout = float(query.get("timeoutSeconds") or 60)
        record.code = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def wait(cond: threading.Condition, seconds: float) -> None:
            cond.wait(seconds)

        try:
            for line in store.watch(
                route.rt,
                route.namespace,
                query.get("resourceVersion"),
                query.get("labelSelector"),
                timeout,
                wait,
            ):
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        self.close_connection = True

    def _route(self, path: str) -> _Route:
        parts = [p for p in path.split("/") if p]
        store = self.server.fake.store
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        elif group == "" and rest[:1] == ["namespaces"] and len(rest) <= 2:
            pass  # the namespaces resource itself
        if not rest or len(rest) > 3:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        rt = store.resource(group, version, rest[0])
        if rt.namespaced and ns is None and len(rest) > 1:
            raise ApiError(404, "NotFound", f"{rt.qualified()} is namespaced")
        return _Route(rt, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else "")

    def _dispatch(self, method: str, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        discovery = self.server.fake.discovery(path)
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return 200, discovery
        review = _review_type(path)
        if review is not None:
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return 201, answer_review(review, self._body(), self.server.fake.auth)
        route = self._route(path)
        store = self.server.fake.store
        rt, ns, name, sub = route.rt, route.namespace or "", route.name, route.subresource
        if sub not in ("", "status", "scale"):
            raise ApiError(404, "NotFound", f"no subresource {sub!r}")
        if sub == "status" and not rt.status:
            raise ApiError(404, "NotFound", f"{rt.qualified()} has no status subresource")
        if name is None:
            if method == "GET":
                return 200, store.list(
                    rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector")
                )
            if method == "POST":
                if rt.namespaced and route.namespace is None:
                    raise ApiError(405, "MethodNotAllowed", "create needs a namespace")
                return 201, store.create(rt, ns, self._body())
            raise ApiError(405, "MethodNotAllowed", f"{method} on a collection is not supported")
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if sub == "scale":
            if method == "GET":
                return 200, store.get_scale(rt, ns, name)
            if method == "PUT":
                return 200, store.write_scale(rt, ns, name, self._body(), None)
            if method == "PATCH":
                return 200, store.write_scale(rt, ns, name, self._body(), ctype)
            raise ApiError(405, "MethodNotAllowed", f"{method} on scale is not supported")
        if method == "GET":
            return 200, store.get_entry(rt, ns, name).raw
        if method == "PUT":
            return 200, store.update(rt, ns, name, self._body(), subresource=sub)
        if method == "PATCH":
            return 200, store.patch(rt, ns, name, self._body(), ctype, subresource=sub)
        if method == "DELETE" and not sub:
            return 200, store.delete(rt, ns, name)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that went away mid-request (shutdown, a stopped watch)


@dataclass
class FakeApiServer:
    """The fake on 127.0.0.1 (a free port); use as a context manager or ``start``/``stop``."""

    clock: Clock | None = None
    auth: FakeAuthorities = field(default_factory=FakeAuthorities)  # tokens and allow rules
    store: FakeStore = field(init=False)
    requests: list[RequestRecord] = field(default_factory=list, init=False)
    _hooks: list[_Hook] = field(default_factory=list, init=False)
    _httpd: _Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.store = FakeStore(self.clock)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.store.closing = True
        with self.store._changed:
            self.store._changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` pointing at this server."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        cfg.connection_pool_maxsize = 16
        return cfg

    # --- fault injection --------------------------------------------------------------------

    def before(
        self,
        method: str,
        path_regex: str,
        action: Callable[[FakeStore], ApiError | None],
        times: int = 1,
    ) -> None:
        """Run ``action`` before the next ``times`` requests matching (method, path); if it
        returns an :class:`ApiError`, that is the response (e.g. a 503)."""
        self._hooks.append(_Hook(method, re.compile(path_regex), action, times))

    def fail_next(
        self, method: str, path_regex: str, code: int, reason: str, times: int = 1
    ) -> None:
        self.before(
            method, path_regex, lambda _s: ApiError(code, reason, f"injected {reason}"), times
        )

    def _run_hooks(self, method: str, path: str) -> ApiError | None:
        for hook in list(self._hooks):
            if hook.method == method and hook.pattern.search(path) and hook.times > 0:
                hook.times -= 1
                if hook.times == 0:
                    self._hooks.remove(hook)
                result = hook.action(self.store)
                if result is not None:
                    return result
        return None

    def writes(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    # --- discovery --------------------------------------------------------------------------

    def discovery(self, path: str) -> bytes | None:
        parts = [p for p in path.split("/") if p]
        types = [*self.store.types.values(), *REVIEWS]
        if parts == ["version"]:
            return _dumps(
                {
                    "major": "1",
                    "minor": "37",
                    "gitVersion": "v1.37.0-fake",
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.25.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if parts == ["api"]:
            return _dumps(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                    ],
                }
            )
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for rt in types:
                if rt.group:
                    groups.setdefault(rt.group, [])
                    if rt.version not in groups[rt.group]:
                        groups[rt.group].append(rt.version)
            return _dumps(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [_group(g, vs) for g, vs in sorted(groups.items())],
                }
            )
        if len(parts) == 2 and parts[0] == "apis":
            versions = sorted({rt.version for rt in types if rt.group == parts[1]})
            if not versions:
                return None
            return _dumps({"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], versions)})
        gv: tuple[str, str] | None = None
        if parts == ["api", "v1"]:
            gv = ("", "v1")
        elif len(parts) == 3 and parts[0] == "apis":
            gv = (parts[1], parts[2])
        if gv is None:
            return None
        selected = [rt for rt in types if (rt.group, rt.version) == gv]
        if not selected:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        resources: list[Obj] = []
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        for rt in sorted(selected, key=lambda r: r.plural):
            resources.append(
                {
                    "name": rt.plural,
                    "singularName": rt.kind.lower(),
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["create"] if rt in REVIEWS else verbs,
                    **({"shortNames": list(rt.short_names)} if rt.short_names else {}),
                }
            )
            if rt.status:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.scale:
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        group_version = f"{gv[0]}/{gv[1]}" if gv[0] else gv[1]
        return _dumps(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }
        )


def _group(name: str, versions: list[str]) -> Obj:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}
