"""The Mélange check with a searched baseline: the heterogeneous mix against the *best*
single-accelerator configuration of ``slo`` at equal attainment.

``sloscaler bench`` runs ``slo@<pool>`` (``slo`` restricted to one accelerator's pool) with the
scenario's defaults only. The acceptance check compares the mix with the *best* single-accelerator
configuration of ``slo`` itself, so this script searches ``slo``'s own knobs for every single
pool — capacity headroom × learning from attainment (the error budget) — and keeps, per pool,
the cheapest configuration whose mean attainment over the seeds reaches the mix's (or the target,
whichever is lower: the bench's own rule, :func:`autoscaler.bench.acceptance`). The mix runs with
the scenario's defaults, untuned. Target: the mix costs at least 20 % less.

Run: ``python benchmarks/bench_melange.py [--scenario hetero-llama8b] [--seeds 1,2,3]
[--headrooms 0.1,0.2,0.3,0.4] [--workers 2] [--json FILE]`` (about 5 minutes here: each
configuration's seeds run in one worker, which reuses the capacity profiles of its first seed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from autoscaler.bench import (
    MELANGE_TARGET,
    PolicyRow,
    acceptance,
    melange_pools,
    policy_rows,
    restrict,
)
from autoscaler.logging import configure
from autoscaler.policies import build_scorer, prepare_policy
from simulator.runner import build_trace, run_scenario
from simulator.scenario import Scenario, load_scenario


@dataclass(frozen=True)
class Config:
    pool: str | None  # None: the mix, with the scenario's defaults
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        if self.pool is None:
            return "slo"
        knobs = " ".join(f"{k}={v}" for k, v in self.params)
        return f"slo@{self.pool} {knobs}".rstrip()


def scenario_for(base: Scenario, config: Config) -> Scenario:
    sc = base if config.pool is None else restrict(base, config.pool)
    params = {**sc.policy.params, **dict(config.params)}
    return sc.model_copy(update={"policy": sc.policy.model_copy(update={"params": params})})


def run_config(base: Scenario, config: Config, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every seed of one configuration, in this process (the capacity profiles are cached)."""
    configure("warning")
    sc = scenario_for(base, config)
    out = []
    for seed in seeds:
        trace = build_trace(sc, seed=seed)
        prepared, controller = prepare_policy("slo", sc, trace)
        result = run_scenario(
            prepared, controller=controller, policy_name="slo", seed=seed, trace=trace,
            scorer=build_scorer(prepared),
        )  # fmt: skip
        s = result.summary
        out.append({"config": config.name, "seed": seed, "slo_attainment": s["slo_attainment"],
                    "gpu_hours": s["gpu_hours"], "cost": s["cost"]})  # fmt: skip
    return out


def grid(base: Scenario, headrooms: Sequence[float]) -> list[Config]:
    configs = [Config(None)]
    for pool in melange_pools(base):
        for budget in (True, False):
            for h in headrooms:
                configs.append(Config(pool, (("headroom", h), ("learn_from_attainment", budget))))
    return configs


def rows(scenario: str, runs: Sequence[dict[str, Any]]) -> list[PolicyRow]:
    """The bench's per-policy means over seeds, one row per configuration."""
    return policy_rows(
        [{"summary": {**r, "scenario": scenario, "policy": r["config"]}} for r in runs]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scenario", default="hetero-llama8b")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--headrooms", default="0.1,0.2,0.3,0.4")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write every run and the verdict to this file")
    args = ap.parse_args()
    base = load_scenario(args.scenario)
    if not melange_pools(base):
        raise SystemExit(f"{args.scenario}: no model is served on several accelerators")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: expected integers separated by commas, got {args.seeds!r}")
    try:
        headrooms = [float(h) for h in args.headrooms.split(",")]
    except ValueError:
        ap.error(f"--headrooms: expected numbers separated by commas, got {args.headrooms!r}")
    if any(not 0.0 <= h < 1.0 for h in headrooms):
        ap.error(f"--headrooms: each must lie in [0, 1), got {args.headrooms!r}")
    configs = grid(base, headrooms)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    failed: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_config, base, c, seeds): c for c in configs}
        for k, fut in enumerate(as_completed(futures), 1):
            try:
                done = fut.result()
            except Exception as e:  # one failed configuration does not lose the others
                failed.append(f"{futures[fut].name}: {type(e).__name__}: {e}")
                print(f"[{k}/{len(configs)}] {futures[fut].name} failed: {e}", flush=True)
                continue
            runs += done
            mean_att = sum(r["slo_attainment"] for r in done) / len(done)
            mean_cost = sum(r["cost"] for r in done) / len(done)
            print(f"[{k}/{len(configs)}] {done[0]['config']:<60} attainment {mean_att:.4f}  "
                  f"${mean_cost:.2f}", flush=True)  # fmt: skip
    if not any(r["config"] == "slo" for r in runs):
        raise SystemExit("the mix's own runs failed: " + "; ".join(failed))
    table = rows(base.name, runs)
    check = acceptance(table, {base.name: base.slo.attainment})[0]
    melange = check["melange"]
    mix_cost = next(r.cost for r in table if r.policy == "slo")
    best = melange["best_single"]
    verdict = {
        "mix": {"attainment": check["slo_attainment"], "cost": mix_cost},
        "best_single": best,
        "best_single_cost": melange["singles"][best]["cost"] if best else None,
        "saving": melange["saving"],
        "target": MELANGE_TARGET,
        "met": melange["saving"] is not None and melange["saving"] >= MELANGE_TARGET,
    }
    print(f"\n{json.dumps(verdict)}\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "rows": [asdict(r) for r in table], "verdict": verdict,
                       "failed": failed}, f, indent=2)  # fmt: skip
    if failed:
        raise SystemExit(f"{len(failed)} configuration(s) failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
