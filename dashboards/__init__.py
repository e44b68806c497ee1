"""Grafana dashboards for sloscaler, built as code with grafana-foundation-sdk.

Why a package and not hand-edited JSON: every panel's PromQL is reviewed as code, may use only
the metric names that exist (vLLM's, the inference gateway's, the controller's and the recording
rules of ``deploy/base/prometheusrule.yaml``), and is executed against a real Prometheus by the
tests; the JSON that operators import (``dashboards/json/``) is generated from it by
``sloscaler dashboards render`` and must not drift from the code.

Four dashboards, one module each: :mod:`dashboards.slo_overview`, :mod:`dashboards.pools`,
:mod:`dashboards.predictor` and :mod:`dashboards.cost`; :mod:`dashboards.render` lists them and
writes the files. The package imports nothing else of the project.
"""
