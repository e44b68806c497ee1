"""Replay a measured vLLM rate sweep in the simulator and compare, stage by stage.

The reference is kubernetes-sigs/inference-perf's KubeCon NA 2025 demo (Apache-2.0): one H100,
Llama-3-8B-Instruct, vLLM v0.11.0, max-model-len 512, max-num-seqs 128, a shared-prefix workload
(~204 prompt tokens, ~62 output tokens), 7 stages of 60 s at rising request rates. Both the knee
and the per-stage latencies are compared:

* **knee** — the achieved throughput at the first stage whose TTFT p50 exceeds 10× the lowest
  stage's. The load generator's send rate is capped by its own concurrency once the server
  saturates, so the simulator's knee is its completion throughput in that stage (requests that
  arrived in the stage and completed, per second of stage).
* **TTFT p50** — client-observed, so the profile's frontend overhead is included.
* **ITL p50** — the decode step time a request sees. The client's own ``inter_token_latency``
  median is 4e-5 s because streamed tokens arrive in bursts, and its ``time_per_output_token``
  divides by streamed chunks (about twice the tokens), so neither measures the server; the
  measured value used here is ``(request_latency_p50 − TTFT_p50) / (output_len_mean − 1)``.
  Example, stage 0: (0.4796 − 0.0310) / (63.15 − 1) = 7.22 ms.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.engine import Engine, EngineConfig, Seq, prefix_block_keys
from simulator.metrics.vllm import VllmMetrics
from simulator.perf.catalog import load_catalog
from simulator.workload import RequestSpec

STAGE_S = 60.0


@dataclass(frozen=True, slots=True)
class StageComparison:
    stage: int
    requested_rps: float
    measured_rps: float
    simulated_rps: float
    measured_ttft_p50_s: float
    simulated_ttft_p50_s: float
    measured_itl_p50_s: float
    simulated_itl_p50_s: float


@dataclass(frozen=True, slots=True)
class SweepComparison:
    stages: tuple[StageComparison, ...]
    measured_knee_rps: float
    simulated_knee_rps: float
    measured_knee_stage: int
    simulated_knee_stage: int

    @property
    def knee_error(self) -> float:
        return abs(self.simulated_knee_rps - self.measured_knee_rps) / self.measured_knee_rps


def read_sweep(path: Path, variant: str = "vllm") -> list[dict[str, float]]:
    """Rows of ``summary_by_stage.csv`` for one variant, as floats."""
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == variant]
    if not rows:
        raise ValueError(f"{path}: no rows for variant {variant!r}")
    return [{k: float(v) for k, v in r.items() if k != "variant"} for r in rows]


def _knee(ttft_p50: list[float], rates: list[float]) -> tuple[int, float]:
    floor = min(ttft_p50)
    for i, t in enumerate(ttft_p50):
        if t > 10 * floor:
            return i, rates[i]
    return len(rates) - 1, rates[-1]


def replay_sweep(
    rows: list[dict[str, float]],
    *,
    accelerator: str = "h100",
    model: str = "llama-3-8b",
    prefix_caching: bool = False,
    seed: int = 0,
) -> SweepComparison:
    """Simulate the sweep on one pod (engine settings as the measurement's) and compare."""
    profile = load_catalog().profile(accelerator, model, 1)
    cfg = EngineConfig(
        max_num_batched_tokens=2048 if not prefix_caching else 8192,
        max_num_seqs=128,
        max_model_len=512,
        enable_prefix_caching=prefix_caching,
        enable_chunked_prefill=prefix_caching,
    )
    rng = np.random.default_rng(seed)
    specs: list[tuple[int, RequestSpec]] = []
    t0 = 0.0
    for stage, row in enumerate(rows):
        n = rng.poisson(row["requested_rate"] * STAGE_S)
        times = np.sort(rng.uniform(t0, t0 + STAGE_S, n))
        prompt = round(row["prompt_len_mean"])
        out = round(row["output_len_mean"])
        for t in times:
            # 128-token system prompt shared by a group, then the question (inference-perf's
            # shared_prefix workload); only matters when prefix caching is on
            group = int(rng.integers(0, 8))
            specs.append(
                (
                    stage,
                    RequestSpec(float(t), prompt, out, prefix_ids=(group,), prefix_unit_tokens=128),
                )
            )
        t0 += STAGE_S
    done: list[Seq] = []
    eng = Engine(profile.step, profile.kv_blocks, cfg, VllmMetrics(model), done.append)
    for rid, (_stage, spec) in enumerate(specs):
        while eng.next_event_time() <= spec.arrival_s:
            eng.run_stretch()
        eng.advance(spec.arrival_s)
        keys = prefix_block_keys(spec, cfg.block_size) if prefix_caching else ()
        eng.add(Seq(rid, spec, spec.arrival_s, spec.output_tokens, keys))
    while eng.has_work:
        eng.run_stretch()
    by_rid = {s.rid: s for s in done}
    overhead = profile.frontend_overhead_s
    comps = []
    sim_ttft = []
    sim_rates = []
    for stage, row in enumerate(rows):
        seqs = [by_rid[r] for r, (st, _) in enumerate(specs) if st == stage and r in by_rid]
        lo, hi = stage * STAGE_S, (stage + 1) * STAGE_S
        completed = [s for s in seqs if s.finish_t <= hi and s.finish_reason == "stop"]
        ttft = np.array([s.first_token_t - s.arrival + overhead for s in seqs])
        itl = np.array([(s.finish_t - s.first_token_t) / (s.out - 1) for s in seqs if s.out > 1])
        rate = len(completed) / (hi - lo)
        sim_ttft.append(float(np.median(ttft)))
        sim_rates.append(rate)
        comps.append(
            StageComparison(
                stage=stage,
                requested_rps=row["requested_rate"],
                measured_rps=row["achieved_rate"],
                simulated_rps=rate,
                measured_ttft_p50_s=row["time_to_first_token_median_s"],
                simulated_ttft_p50_s=float(np.median(ttft)),
                measured_itl_p50_s=(
                    row["request_latency_median_s"] - row["time_to_first_token_median_s"]
                )
                / (row["output_len_mean"] - 1),
                simulated_itl_p50_s=float(np.median(itl)),
            )
        )
    m_stage, m_knee = _knee(
        [r["time_to_first_token_median_s"] for r in rows], [r["achieved_rate"] for r in rows]
    )
    s_stage, s_knee = _knee(sim_ttft, sim_rates)
    return SweepComparison(tuple(comps), m_knee, s_knee, m_stage, s_stage)
