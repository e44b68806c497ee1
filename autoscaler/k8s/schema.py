"""Validation of Kubernetes objects against the schemas a real API server enforces.

Built-in kinds (Deployment, Pod, Lease, Event, Scale, CustomResourceDefinition, …) are checked
against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate`` (strict variant: unknown
fields refused), so an object the fake API server accepts is one the real one would accept too.
Custom resources are checked against their CRD's ``openAPIV3Schema`` the way the apiextensions
server does: unknown fields pruned, OpenAPI 3.0 keywords (``exclusiveMinimum: true``), and
``x-kubernetes-list-type: map`` keys unique. CEL ``x-kubernetes-validations`` are not evaluated
(the controller re-checks those rules itself; see ``autoscaler/crd.py``).

Validators are built once per kind and cached: ``kubernetes_validate.validate`` re-reads a 1.8 MB
definitions file on every call, far too slow for an API server.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
import referencing
from kubernetes_validate.utils import latest_version

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class SchemaMissingError(LookupError):
    """No schema is known for this apiVersion/kind."""


def _schema_dir() -> Any:
    version = latest_version()
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return root.joinpath(f"v{version}-local-strict")


@lru_cache(maxsize=1)
def _registry() -> referencing.Registry[Any]:
    defs = json.loads(_schema_dir().joinpath("_definitions.json").read_text())
    resource = referencing.Resource.from_contents(defs)
    return resource @ referencing.Registry()


def _file_name(api_version: str, kind: str) -> str:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@lru_cache(maxsize=256)
def builtin_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A cached validator for a built-in kind (raises :class:`SchemaMissingError`)."""
    path = _schema_dir().joinpath(_file_name(api_version, kind))
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaMissingError(f"no schema for {kind} in {api_version}") from None
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry())


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for p in error.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def _errors(validator: jsonschema.protocols.Validator, obj: Any) -> list[FieldError]:
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [FieldError(_path(e), e.message) for e in errors[:10]]


def validate_name(obj: dict[str, Any]) -> list[FieldError]:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        return [FieldError("metadata.name", "Required value: name or generateName is required")]
    if len(name) > 253 or not _NAME.match(name):
        return [
            FieldError(
                "metadata.name",
                f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower "
                "case alphanumeric characters, '-' or '.'",
            )
        ]
    return []


def validate_builtin(obj: dict[str, Any], *, named: bool = True) -> list[FieldError]:
    """Errors of a built-in object (empty when valid). ``named=False`` for the kinds that are
    never stored and need no name (TokenReview, SubjectAccessReview)."""
    validator = builtin_validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    return (validate_name(obj) if named else []) + _errors(validator, obj)


# --- custom resources -------------------------------------------------------------------------


class CustomSchema:
    """A CRD version's ``openAPIV3Schema``: prune, then validate (OpenAPI 3.0 semantics)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = jsonschema.Draft4Validator(_for_draft4(schema))

    def prune(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Drop fields the schema does not declare (what the API server does on write)."""
        out = _prune(copy.deepcopy(obj), self.schema, top=True)
        assert isinstance(out, dict)
        return out

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        return validate_name(obj) + _errors(self._validator, body) + _list_maps(obj, self.schema)


def _for_draft4(node: Any) -> Any:
    """OpenAPI 3.0 → draft 4: the same numeric keywords; drop ``x-kubernetes-*`` and ``format``
    (the API server only checks a few formats, and not on custom resources' strings)."""
    if isinstance(node, list):
        return [_for_draft4(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k == "format":
            continue
        if k == "properties":
            out[k] = {name: _for_draft4(s) for name, s in v.items()}
        else:
            out[k] = _for_draft4(v)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def _prune(value: Any, schema: dict[str, Any], top: bool = False) -> Any:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None:
            keep = {}
            for k, v in value.items():
                if k in props:
                    keep[k] = v if (top and k == "metadata") else _prune(v, props[k])
                elif top and k in ("apiVersion", "kind", "metadata"):
                    keep[k] = v
            return keep
        if isinstance(extra, dict):
            return {k: _prune(v, extra) for k, v in value.items()}
        return value if top else {}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(v, schema["items"]) for v in value]
    return value


def _list_maps(obj: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """``x-kubernetes-list-type: map``: no two items with the same keys."""
    errors: list[FieldError] = []
    if isinstance(obj, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in obj:
                errors += _list_maps(obj[k], sub, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        items = schema.get("items") or {}
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(obj):
                if not isinstance(item, dict):
                    continue
                key = tuple(json.dumps(item.get(k)) for k in keys)
                if key in seen:
                    errors.append(FieldError(f"{path}[{i}]", f"Duplicate value: {key}"))
                seen.add(key)
        for i, item in enumerate(obj):
            errors += _list_maps(item, items, f"{path}[{i}]")
    return errors
