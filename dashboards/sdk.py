"""The grafana-foundation-sdk modules the dashboards use, imported in one place.

Why: the SDK ships builders for Grafana's classic dashboard JSON (what the provisioning sidecar,
a ConfigMap and the UI import all accept) next to the newer v2 resources, and several of its
modules warn at import time to prefer v2. The classic model is the deliberate choice here, so the
notice is silenced once, for these imports only, instead of in every caller.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Prefer using dashboardv2", category=DeprecationWarning
    )
    from grafana_foundation_sdk.builders import (
        bargauge,
        common,
        prometheus,
        stat,
        statetimeline,
        table,
        timeseries,
    )
    from grafana_foundation_sdk.builders import dashboard as builder
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common as common_models
    from grafana_foundation_sdk.models import dashboard as models
    from grafana_foundation_sdk.models import prometheus as prometheus_models

__all__ = [
    "Builder",
    "JSONEncoder",
    "bargauge",
    "builder",
    "common",
    "common_models",
    "models",
    "prometheus",
    "prometheus_models",
    "stat",
    "statetimeline",
    "table",
    "timeseries",
]
