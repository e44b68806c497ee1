"""Simulator speed: how much faster than real time the simulated cluster runs.

Targets (one core): the 1-hour Azure conversation trace on the default scenario at least 200×
faster than real time; 16 pods at 50 requests/s for one simulated hour in at most 60 s of wall
time. Also reported: numeric capacity profiling (``autoscaler.capacity.profile_point``, what
the closed loop spends most of its time on) for four bundled scenarios' pools at three loads
each. Run with ``make bench-sim`` or ``python benchmarks/bench_simulator.py [--json FILE]``; the
numbers go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from autoscaler.capacity import LengthSample, profile_point
from autoscaler.logging import configure
from autoscaler.policies import build_scorer, prepare_policy
from autoscaler.sim_adapter import pool_profiles
from policies.types import DemandMix
from simulator.runner import build_trace, run_scenario
from simulator.scenario import Scenario, load_scenario


def measure(case: str, target: str, sc: Scenario, policy: str = "static") -> dict[str, object]:
    """Replay ``sc`` under ``policy`` and report simulated vs wall time."""
    trace = build_trace(sc)
    sc, controller = prepare_policy(policy, sc, trace)
    t0 = time.perf_counter()
    result = run_scenario(sc, controller=controller, trace=trace, scorer=build_scorer(sc))
    wall = time.perf_counter() - t0
    s = result.summary
    return {
        "case": case,
        "requests": s["requests"],
        "sim_seconds": s["sim_seconds"],
        "wall_seconds": round(wall, 2),
        "speedup": round(s["sim_seconds"] / wall, 1),
        "target": target,
        "slo_attainment": s["slo_attainment"],
    }


#: (scenario, demand shape, per-replica loads in req/s) profiled by :func:`measure_profiling`
PROFILED = (
    ("servegen-diurnal", DemandMix(2000, 300, 0.0), (8.0, 16.0, 32.0)),
    ("azure-conv-h100", DemandMix(1000, 250, 0.0), (2.0, 4.0, 6.0)),
    ("mooncake-pd", DemandMix(12000, 300, 0.3), (0.6, 1.0, 1.4)),
    ("wide-ep", DemandMix(2000, 400, 0.0), (12.0, 16.0, 24.0)),
)


def measure_profiling() -> dict[str, object]:
    """Profile every pool of the :data:`PROFILED` scenarios at their loads, caches cleared."""
    profile_point.cache_clear()
    points = 0
    t0 = time.perf_counter()
    for name, mix, loads in PROFILED:
        lengths = LengthSample.lognormal(mix)
        for pp in pool_profiles(load_scenario(name)).values():
            for rps in loads:
                profile_point(pp, lengths, rps)
                points += 1
    wall = time.perf_counter() - t0
    return {
        "case": f"capacity profiling, {points} load points of 2,000 requests",
        "points": points,
        "wall_seconds": round(wall, 2),
        "target": "(reported)",
    }


SIXTEEN_PODS = {
    "name": "bench-16-pods",
    "trace": {
        "generate": {
            "kind": "poisson",
            "rate_rps": 50,
            "duration_s": 3600,
            "lengths": {"mean_input_tokens": 1024, "mean_output_tokens": 256},
        }
    },
    "slo": {"ttft_ms": 1000, "tpot_ms": 50},
    "pools": [
        {
            "name": "llama8b-h100",
            "model": "llama-3-8b",
            "accelerator": "h100",
            "gpus": 1,
            "replicas": 16,
            "max_replicas": 16,
        }
    ],
    "gateway": {"scorer": "least-load"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    configure("warning")
    conv = load_scenario("azure-conv-h100")
    rows = [
        measure("azure-conv-h100, fixed replicas, 1 h trace", ">= 200x", conv),
        measure(
            "the same, gateway.latency_model: profile",
            ">= 200x",
            conv.model_copy(
                update={"gateway": conv.gateway.model_copy(update={"latency_model": "profile"})}
            ),
        ),
        measure(
            "16 pods, Poisson 50 req/s, 1 simulated hour",
            "<= 60 s wall",
            Scenario.model_validate(SIXTEEN_PODS),
        ),
        measure("azure-conv-h100, closed loop (slo), 1 h trace", "(reported)", conv, "slo"),
        measure_profiling(),
    ]
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    for row in rows:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
