"""Simulated pods' and gateway's Prometheus metrics, in the names real clusters export.

Why this package exists: everything the controller learns from — queue depth, KV usage, token
rates, TTFT/ITL histograms, the gateway's flow-control queue and shed count — reaches it as
Prometheus series. The simulator produces the same series, with vLLM's and the Inference
Extension's exact names, labels and buckets, and hands them out three ways:

* in memory: :meth:`VllmMetrics.snapshot` / :meth:`VllmMetrics.samples` (the simulated
  ``MetricsSource`` diffs snapshots into rates and window quantiles);
* over HTTP: :class:`MetricsHTTPServer` serves each pod's ``/metrics`` in the text format 0.0.4
  (:func:`render_prometheus_text`), scrapeable by a real Prometheus;
* as a file: :class:`OpenMetricsWriter` records a run for ``promtool tsdb create-blocks-from
  openmetrics``.

``docs/metrics-simulator.md`` lists every exported series.
"""

from simulator.metrics.exposition import CONTENT_TYPE, render_prometheus_text
from simulator.metrics.gateway import (
    DEFAULT_FAIRNESS_ID,
    LLMD_QUEUE_SIZE_NAME,
    QUEUE_SIZE_NAME,
    RESOURCE_EXHAUSTED,
    GatewayMetrics,
    GatewaySnapshot,
)
from simulator.metrics.histogram import Histogram, HistogramSnapshot
from simulator.metrics.http_server import MetricsHTTPServer
from simulator.metrics.openmetrics import OpenMetricsWriter
from simulator.metrics.samples import MetricFamily, MetricsSource, Sample, SourceSnapshot
from simulator.metrics.vllm import (
    FINISHED_REASONS,
    ITERATION_TOKENS_BUCKETS,
    ITL_BUCKETS,
    ITL_NAME,
    LEGACY_ITL_NAME,
    REQUEST_LATENCY_BUCKETS,
    TTFT_BUCKETS,
    MetricsSnapshot,
    VllmMetrics,
    build_1_2_5_buckets,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_FAIRNESS_ID",
    "FINISHED_REASONS",
    "ITERATION_TOKENS_BUCKETS",
    "ITL_BUCKETS",
    "ITL_NAME",
    "LEGACY_ITL_NAME",
    "LLMD_QUEUE_SIZE_NAME",
    "QUEUE_SIZE_NAME",
    "REQUEST_LATENCY_BUCKETS",
    "RESOURCE_EXHAUSTED",
    "TTFT_BUCKETS",
    "GatewayMetrics",
    "GatewaySnapshot",
    "Histogram",
    "HistogramSnapshot",
    "MetricFamily",
    "MetricsHTTPServer",
    "MetricsSnapshot",
    "MetricsSource",
    "OpenMetricsWriter",
    "Sample",
    "SourceSnapshot",
    "VllmMetrics",
    "build_1_2_5_buckets",
    "render_prometheus_text",
]
