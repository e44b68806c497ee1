"""Pod readiness as Kubernetes defines it: the ``Ready`` condition is ``"True"``.

A pod that is Running but not Ready (model still loading, readiness probe failing) serves no
traffic, so the controller counts ready pods, never running ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False
