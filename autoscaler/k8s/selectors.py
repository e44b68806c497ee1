"""Kubernetes label selectors: the string form parsed once, matched many times.

Why here: the controller matches pods to a pool by the ``status.selector`` string its ``scale``
subresource reports (what HPA does), and the fake API server filters lists by ``labelSelector``;
both need the same grammar — ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k`` and ``!k``, comma-separated, all of which must hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


class SelectorError(ValueError):
    """A selector string that does not parse."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # "!=" and "notin"


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> dict[str, str]:
        """``k=v`` requirements as a dict (for indexing pods by label)."""
        return {r.key: next(iter(r.values)) for r in self.requirements if r.op == "="}


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


@lru_cache(maxsize=4096)
def parse_selector(text: str | None) -> Selector:
    """Parse ``text``; empty or ``None`` selects everything."""
    if not text:
        return Selector(())
    reqs: list[Requirement] = []
    for part in _split(text):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), "in" if m.group(2) == "in" else "notin", values))
        elif m := _EQ.match(part):
            op: Operator = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement {part.strip()!r}")
    return Selector(tuple(reqs))


def format_match_labels(labels: Mapping[str, str]) -> str:
    """``{"app": "x", "tier": "y"}`` → ``"app=x,tier=y"`` (sorted, as the API server does)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def selector_from_label_selector(sel: Mapping[str, object] | None) -> str:
    """A ``metav1.LabelSelector`` (matchLabels, matchExpressions) in its string form."""
    if not sel:
        return ""
    parts = []
    match_labels = sel.get("matchLabels") or {}
    if isinstance(match_labels, Mapping):
        parts.append(format_match_labels({str(k): str(v) for k, v in match_labels.items()}))
    for expr in sel.get("matchExpressions") or []:  # type: ignore[attr-defined]
        key, op = expr["key"], expr["operator"]
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(p for p in parts if p)
