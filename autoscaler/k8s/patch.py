"""The patch formats the Kubernetes API accepts, applied to plain JSON documents.

JSON merge patch (RFC 7386) and JSON patch (RFC 6902) exactly; strategic merge patch as merge
patch — right for the kinds sloscaler touches (scale, status, metadata), where no list is merged
by key. The fake API server uses these; they are pure functions on ``dict``/``list`` values.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot apply (bad path, failed ``test``, wrong shape)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for p in parts[:-1]:
        if isinstance(node, list):
            try:
                node = node[int(p)]
            except (ValueError, IndexError):
                raise PatchError(f"no element {p!r}") from None
        elif isinstance(node, dict) and p in node:
            node = node[p]
        else:
            raise PatchError(f"path segment {p!r} not found")
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    node, last = _parent(doc, parts)
    try:
        return node[int(last)] if isinstance(node, list) else node[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path {path!r} not found") from None


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    node, last = _parent(doc, parts)
    if isinstance(node, list):
        if last == "-":
            node.append(value)
            return doc
        i = int(last)
        if not 0 <= i <= len(node):
            raise PatchError(f"index {i} out of range")
        node.insert(i, value)
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise PatchError(f"cannot add under a scalar at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    node, last = _parent(doc, parts)
    try:
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path {path!r} not found") from None
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test — applied in order, all or nothing."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test failed at {path!r}")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc
