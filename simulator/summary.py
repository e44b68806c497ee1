"""What a run achieved: SLO attainment, latency percentiles, GPU-hours and cost, per pool.

SLO attainment counts every request of the trace: a request attains the SLO when it completed and
both its TTFT and its TPOT are within the objectives; shed and failed requests are misses.
Example: 1,000 requests, 10 shed, 5 failed, 20 completed too slowly → (1,000 − 35) / 1,000 = 0.965.
TPOT of a request is ``(finish − first token) / (output tokens − 1)``; one-token answers have no
TPOT and meet that objective trivially.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.cluster import DONE, FAILED, SHED, SimulationOutput


@dataclass(frozen=True, slots=True)
class SLO:
    ttft_ms: float
    tpot_ms: float
    attainment: float = 0.99


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": round(float(p50), 6), "p90": round(float(p90), 6), "p99": round(float(p99), 6)}


def slo_met(out: SimulationOutput, slo: SLO) -> np.ndarray:
    """Boolean per request: completed with TTFT and TPOT inside the SLO."""
    rec = out.records
    done = rec.status == DONE
    ttft = rec.ttft()
    tpot = rec.tpot()
    with np.errstate(invalid="ignore"):
        ok = (ttft <= slo.ttft_ms / 1000.0) & (tpot <= slo.tpot_ms / 1000.0)
    return np.asarray(done & ok)


def summarize(
    out: SimulationOutput,
    slo: SLO,
    *,
    scenario: str,
    policy: str,
    seed: int,
    wall_seconds: float,
    gateway: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON summary of ``sloscaler simulate`` (stable keys; later tools rely on them)."""
    rec = out.records
    n = len(rec.status)
    done = rec.status == DONE
    met = slo_met(out, slo)
    ttft = rec.ttft()[done]
    tpot = rec.tpot()[done]
    hours = max(out.end_s, 1e-9) / 3600.0
    pools = []
    gpu_hours_total = 0.0
    cost_total = 0.0
    replicas = np.array([s.replicas for s in out.samples], dtype=float) if out.samples else None
    for pool in out.pools:
        gpu_h = pool.gpu_seconds(out.end_s) / 3600.0
        cost = gpu_h * pool.spec.price_per_gpu_hour
        gpu_hours_total += gpu_h
        cost_total += cost
        col = replicas[:, pool.index] if replicas is not None else np.zeros(1)
        pools.append(
            {
                "name": pool.spec.name,
                "role": pool.spec.role,
                "accelerator": pool.spec.accelerator,
                "model": pool.spec.model,
                "gpus_per_replica": pool.spec.gpus_per_replica,
                "gpu_hours": round(gpu_h, 6),
                "cost": round(cost, 4),
                "replicas_mean": round(float(col.mean()), 4),
                "replicas_max": int(col.max()),
                "scale_events": pool.scale_events,
            }
        )
    return {
        "scenario": scenario,
        "policy": policy,
        "seed": seed,
        "requests": n,
        "completed": int(done.sum()),
        "shed": int((rec.status == SHED).sum()),
        "failed": int((rec.status == FAILED).sum()),
        "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms, "attainment": slo.attainment},
        "slo_attainment": round(float(met.sum()) / n, 6) if n else None,
        "ttft_s": _pcts(ttft),
        "tpot_s": _pcts(tpot),
        "gpu_hours": round(gpu_hours_total, 6),
        "cost": round(cost_total, 4),
        "sim_seconds": round(out.end_s, 3),
        "mean_gpus": round(gpu_hours_total / hours, 4),
        "wall_seconds": round(wall_seconds, 3),
        "pools": pools,
        "gateway": dict(gateway or {}),
    }
