"""The autoscalers operators would run instead of sloscaler, as pure decision functions.

Why here: a benchmark is only honest if every contender sees the same simulated metrics, the same
start-up delays and the same gateway, and behaves as its upstream does with its published
defaults. So each baseline is a pure function of what its upstream reads (per-pod gauges, a
Prometheus query result, interval averages) and of explicit frozen state; the adapters in
``autoscaler.baseline_adapters`` read the simulated cluster the way the upstream's metrics
pipeline would and apply the result. Written from the published formulas
(``shared/reference/anchors.md``), no upstream code.

- :mod:`.hpa` — Kubernetes HPA v2 (``hpa-kv``; also the engine under KEDA).
- :mod:`.keda` — KEDA's ScaledObject with a Prometheus trigger (``keda-queue``).
- :mod:`.wva` — llm-d Workload Variant Autoscaler, saturation V1 (``wva-saturation``).
- :mod:`.dynamo` — NVIDIA Dynamo's SLA planner, throughput-based (``dynamo-throughput``).
- :mod:`.oracle` — not a policy: the floor on GPU-hours with perfect knowledge of the future.
"""

from __future__ import annotations
