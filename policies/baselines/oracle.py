"""The oracle: a floor on GPU-hours for a trace, not a policy to run.

Why: "fewer GPU-hours than HPA" says little if every policy is far from what the traffic needed.
The oracle knows the future arrivals and pays no start-up time, so in every window it holds
exactly the fewest replicas whose capacity at the SLO covers that window's arrival rate:

``replicas_w = max(min_replicas, ceil(arrivals_w / window_s / capacity_rps))``

with ``capacity_rps`` the largest per-replica rate at which one replica of the pool still meets
the SLO at the attainment target (the caller measures it on the simulator's own engine model).
Where several variants serve the same demand (the same model on two accelerators), each window
takes the cover with the fewest GPUs (or the lowest cost) inside ``max_replicas`` and the GPU
inventory. GPU-hours = Σ_w Σ_v replicas · GPUs per replica · window_s / 3600.

Example: 60 s windows with 300, 900 and 120 arrivals, 4 rps per 4-GPU replica, min 1 →
rates 5, 15, 2 rps → 2, 4, 1 replicas → (2 + 4 + 1) · 4 GPUs · 60 s / 3600 = 0.47 GPU-hours.

It is a floor in the engine model's own terms: a real controller cannot resize within a window
nor see the future, and it pays start-up; both push real GPU-hours above it. (The bench
calibrates ``capacity_rps`` by replaying the schedule in the simulator: ``docs/bench.md``.)
Windows whose demand no allowed cover meets are counted (``unmet_windows``) and sized at the
limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Objective = Literal["gpus", "cost"]


@dataclass(frozen=True, slots=True)
class OracleVariant:
    """One pool that can serve the demand."""

    name: str
    accelerator: str
    gpus: int  # per replica
    price_per_gpu_hour: float
    capacity_rps: float  # per replica at the SLO
    min_replicas: int = 0
    max_replicas: int = 64


@dataclass(frozen=True, slots=True)
class OracleFloor:
    window_s: float
    replicas: Mapping[str, tuple[int, ...]]  # variant → replicas per window
    gpu_hours: float
    cost: float
    unmet_windows: int


def _fit(v: OracleVariant, inventory: Mapping[str, int], used: Mapping[str, int]) -> int:
    left = inventory.get(v.accelerator)
    cap = v.max_replicas
    if left is not None:
        cap = min(cap, (left - used.get(v.accelerator, 0)) // v.gpus)
    return max(0, cap)


def cheapest_cover(
    demand_rps: float,
    variants: Sequence[OracleVariant],
    inventory: Mapping[str, int],
    objective: Objective = "gpus",
) -> tuple[dict[str, int], bool]:
    """Replicas per variant covering ``demand_rps`` at least cost (GPUs, or dollars), within
    every variant's ``[min, max]`` and the inventory; ``(limit cover, False)`` when none does.

    Exhaustive over all but the last variant (pools are few and bounded), the last one filling
    the remainder. Example: 10 rps with H100 (4 GPUs, 4 rps) and MI300X (1 GPU, 3 rps, at most
    2 GPUs) by GPUs → MI300X 2 (6 rps) + H100 1 (4 rps) = 6 GPUs.
    """
    best: tuple[tuple[float, float], dict[str, int]] | None = None
    most: tuple[float, dict[str, int]] = (-1.0, {})  # the largest cover, when none suffices

    def score(counts: Mapping[str, int]) -> tuple[float, float]:
        gpus = float(sum(counts[v.name] * v.gpus for v in variants))
        cost = sum(counts[v.name] * v.gpus * v.price_per_gpu_hour for v in variants)
        return (gpus, cost) if objective == "gpus" else (cost, gpus)

    def walk(i: int, counts: dict[str, int], served: float, used: dict[str, int]) -> None:
        nonlocal best, most
        v = variants[i]
        top = _fit(v, inventory, used)
        lo = min(v.min_replicas, top)
        if i == len(variants) - 1:
            need = demand_rps - served
            n = lo
            if need > 1e-12 and v.capacity_rps > 0:
                n = max(lo, math.ceil(need / v.capacity_rps - 1e-9))
            if n <= top:
                done = {**counts, v.name: n}
                s = score(done)
                if best is None or s < best[0]:
                    best = (s, done)
            elif served + top * v.capacity_rps > most[0]:
                most = (served + top * v.capacity_rps, {**counts, v.name: top})
            return
        for n in range(lo, top + 1):
            acc = v.accelerator
            walk(
                i + 1,
                {**counts, v.name: n},
                served + n * v.capacity_rps,
                {**used, acc: used.get(acc, 0) + n * v.gpus},
            )

    walk(0, {}, 0.0, {})
    if best is not None:
        return best[1], True
    return most[1], False


def oracle_floor(
    window_arrivals: Sequence[int],
    window_s: float,
    variants: Sequence[OracleVariant],
    inventory: Mapping[str, int] | None = None,
    objective: Objective = "gpus",
) -> OracleFloor:
    """The per-window covers of the module docstring and their GPU-hours and cost."""
    inv = dict(inventory or {})
    series: dict[str, list[int]] = {v.name: [] for v in variants}
    unmet = 0
    cache: dict[int, tuple[dict[str, int], bool]] = {}
    for count in window_arrivals:
        if count not in cache:
            cache[count] = cheapest_cover(count / window_s, variants, inv, objective)
        cover, met = cache[count]
        unmet += not met
        for v in variants:
            series[v.name].append(cover.get(v.name, 0))
    hours = window_s / 3600.0
    gpu_h = sum(sum(series[v.name]) * v.gpus * hours for v in variants)
    cost = sum(sum(series[v.name]) * v.gpus * v.price_per_gpu_hour * hours for v in variants)
    return OracleFloor(
        window_s, {k: tuple(s) for k, s in series.items()}, gpu_h, cost, unmet_windows=unmet
    )
