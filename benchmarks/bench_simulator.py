"""Simulator speed: how much faster than real time the simulated cluster runs.

Targets (one core): the 1-hour Azure conversation trace on the default scenario at least 200×
faster than real time; 16 pods at 50 requests/s for one simulated hour in at most 60 s of wall
time. Run with ``make bench-sim`` or ``python benchmarks/bench_simulator.py [--json FILE]``; the
numbers go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from simulator.runner import run_scenario
from simulator.scenario import Scenario, load_scenario


def default_scenario() -> dict[str, object]:
    sc = load_scenario("azure-conv-h100")
    t0 = time.perf_counter()
    result = run_scenario(sc)
    wall = time.perf_counter() - t0
    s = result.summary
    return {
        "case": "azure-conv-h100 (static), 1 h trace",
        "requests": s["requests"],
        "sim_seconds": s["sim_seconds"],
        "wall_seconds": round(wall, 2),
        "speedup": round(s["sim_seconds"] / wall, 1),
        "target": ">= 200x",
    }


def sixteen_pods() -> dict[str, object]:
    sc = Scenario.model_validate(
        {
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
    )
    t0 = time.perf_counter()
    result = run_scenario(sc)
    wall = time.perf_counter() - t0
    s = result.summary
    return {
        "case": "16 pods, Poisson 50 req/s, 1 simulated hour",
        "requests": s["requests"],
        "sim_seconds": s["sim_seconds"],
        "wall_seconds": round(wall, 2),
        "speedup": round(s["sim_seconds"] / wall, 1),
        "target": "<= 60 s wall",
        "slo_attainment": s["slo_attainment"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    rows = [default_scenario(), sixteen_pods()]
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    for row in rows:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
