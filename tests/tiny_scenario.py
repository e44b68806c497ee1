"""The smallest scenario a closed-loop or bench test can run: one Llama-3-8B H100 pool, two
minutes of a load step, fast start-up."""

from __future__ import annotations


def tiny_scenario(peak_rps: float) -> str:
    """Scenario YAML named ``tiny``: 60 s at 4 req/s, then 60 s at ``peak_rps``."""
    return f"""
name: tiny
description: two minutes of a load step on one Llama-3-8B H100 pool
seed: 0
trace:
  generate:
    kind: step
    stages: [[60, 4.0], [60, {peak_rps}]]
    lengths: {{mean_input_tokens: 512, mean_output_tokens: 64}}
slo: {{ttft_ms: 1000, tpot_ms: 50, attainment: 0.99}}
pools:
  - name: llama8b-h100
    model: llama-3-8b
    accelerator: h100
    gpus: 1
    replicas: 1
    min_replicas: 1
    max_replicas: 4
    engine: {{max_model_len: 4096}}
    startup: {{container_start_s: 5, load_gbps: 8.0}}
gateway: {{scorer: least-load}}
policy: {{name: slo}}
inventory: {{h100: 8}}
sample_interval_s: 5
"""
