"""Predicted-latency routing vs llm-d's prefix + load-aware routing on a long-prefill workload.

The ``long-prefill`` scenario (6 Llama-3-8B H100 pods, ISL:OSL about 400:1, shared document
prefixes) is replayed at 25 %, 37.5 %, 50 %, 62.5 % and 75 % of its saturation throughput (measured
first: completions per second under a 90 req/s overload) with each scorer. Target: p90 TTFT at
least 2x lower with the predicted-latency scorer in the upper half of the range (llm-d reports up
to 3x). The predicted-latency scorer runs twice: on the pools' calibrated profiles, and on the
predictor's request-level models learned online from the requests it routes
(``gateway.latency_model: learned``; the profile answers until the first model is trained).
Run: ``python benchmarks/bench_routing.py [--duration S] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from autoscaler.logging import configure
from autoscaler.policies import build_scorer
from simulator.runner import RunResult, run_scenario
from simulator.scenario import Scenario, load_scenario

SHARES = (0.25, 0.375, 0.5, 0.625, 0.75)
#: (label, gateway scorer, latency model of the predicted-latency scorer)
SCORERS = (
    ("prefix_load", "prefix-load", "profile"),
    ("predicted_latency", "predicted-latency", "profile"),
    ("predicted_latency_learned", "predicted-latency", "learned"),
)


def at_rate(
    base: Scenario, rate: float, duration: float, scorer: str, latency_model: str = "profile"
) -> Scenario:
    gen = dict(base.trace.generate or {})
    gen.update(rate_rps=rate, duration_s=duration)
    gateway = {"scorer": scorer, "latency_model": latency_model}
    return base.model_copy(
        update={
            "trace": base.trace.model_copy(update={"generate": gen}),
            "gateway": base.gateway.model_copy(update=gateway),
        }
    )


def run(sc: Scenario) -> RunResult:
    return run_scenario(sc, scorer=build_scorer(sc))


def saturation_rps(base: Scenario, duration: float = 300.0) -> float:
    """Completions per second in steady state under overload (best scorer)."""
    out = run(at_rate(base, 90.0, duration, "predicted-latency")).output
    fin = out.records.finish[~np.isnan(out.records.finish)]
    window = (fin >= 60.0) & (fin < duration)
    return float(window.sum()) / (duration - 60.0)


def compare(duration: float, shares: tuple[float, ...] = SHARES) -> dict[str, object]:
    base = load_scenario("long-prefill")
    sat = saturation_rps(base)
    rows = []
    for share in shares:
        rate = round(share * sat, 2)
        row: dict[str, float] = {"share_of_saturation": share, "rate_rps": rate}
        for label, scorer, model in SCORERS:
            s = run(at_rate(base, rate, duration, scorer, model)).summary
            row[f"ttft_p90_{label}_s"] = s["ttft_s"]["p90"]
            row[f"attainment_{label}"] = s["slo_attainment"]
        baseline = row["ttft_p90_prefix_load_s"]
        row["ratio"] = round(baseline / row["ttft_p90_predicted_latency_s"], 2)
        row["ratio_learned"] = round(baseline / row["ttft_p90_predicted_latency_learned_s"], 2)
        rows.append(row)
    return {"saturation_rps": round(sat, 2), "duration_s": duration, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of trace per rate")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    configure("warning")
    result = compare(args.duration)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
