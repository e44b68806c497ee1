"""How many replicas of which variants: demand over capacity, and the cheapest variant mix.

A *variant* is one pool serving a model in a role on one accelerator type (e.g. Llama-3-70B
aggregated on H100×4, and the same on MI300X×2). Each variant ``v`` has a per-replica capacity
``c_v`` (requests/s at the SLO, after headroom), a price per replica ``p_v`` (price per GPU-hour ×
GPUs) and GPUs per replica ``g_v``. The cheapest mix solves

    minimize Σ p_v·n_v   subject to   Σ c_v·n_v ≥ D,   min_v ≤ n_v ≤ max_v,
                                       Σ_{v on accelerator a} g_v·n_v ≤ inventory_a

exactly by enumeration (the search space is tiny: a few variants, each up to ⌈D/c_v⌉ + 1
replicas); past ``MAX_ENUMERATION`` combinations it falls back to a greedy fill by price per unit
of capacity, which is within one replica of the cheapest variant of the optimum (the LP bound).

Worked example: D = 10 rps; H100×4 at 2.0 rps for $16.70/h, MI300X×2 at 1.5 rps for $3.98/h →
7 MI300X replicas (10.5 rps, $27.86/h) beat 5 H100 replicas (10 rps, $83.52/h).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_ENUMERATION = 200_000


@dataclass(frozen=True, slots=True)
class Variant:
    pool: str
    accelerator: str
    capacity_rps: float  # per replica, after headroom
    price_per_replica_hour: float
    gpus_per_replica: int
    min_replicas: int
    max_replicas: int


def replicas_for(demand: float, capacity: float) -> int:
    """⌈demand / capacity⌉, 0 for no demand; ``capacity`` ≤ 0 means "cannot serve"."""
    if demand <= 0:
        return 0
    if capacity <= 0:
        return 10**9
    return math.ceil(demand / capacity - 1e-9)


def mix_cost(variants: Sequence[Variant], counts: Mapping[str, int]) -> float:
    return sum(v.price_per_replica_hour * counts.get(v.pool, 0) for v in variants)


def mix_capacity(variants: Sequence[Variant], counts: Mapping[str, int]) -> float:
    return sum(v.capacity_rps * counts.get(v.pool, 0) for v in variants)


def _fits(variants: Sequence[Variant], counts: Sequence[int], inventory: Mapping[str, int]) -> bool:
    used: dict[str, int] = {}
    for v, n in zip(variants, counts, strict=True):
        used[v.accelerator] = used.get(v.accelerator, 0) + v.gpus_per_replica * n
    return all(used[a] <= inventory[a] for a in used if a in inventory)


def cheapest_mix(
    variants: Sequence[Variant], demand: float, inventory: Mapping[str, int]
) -> tuple[dict[str, int], bool]:
    """(replicas per pool, demand met?) — the cheapest mix meeting ``demand``, or, when no mix
    can, the one with the most capacity (cheapest among those)."""
    if not variants:
        return {}, demand <= 0
    ranges = []
    for v in variants:
        hi = min(v.max_replicas, max(v.min_replicas, replicas_for(demand, v.capacity_rps)))
        ranges.append(range(v.min_replicas, max(v.min_replicas, hi) + 1))
    size = math.prod(len(r) for r in ranges)
    if size > MAX_ENUMERATION:
        return _greedy(variants, demand, inventory)
    best: tuple[float, float, tuple[int, ...]] | None = None  # (cost, -capacity, counts)
    fallback: tuple[float, float, tuple[int, ...]] | None = None  # (-capacity, cost, counts)
    for counts in itertools.product(*ranges):
        if not _fits(variants, counts, inventory):
            continue
        cap = sum(v.capacity_rps * n for v, n in zip(variants, counts, strict=True))
        cost = sum(v.price_per_replica_hour * n for v, n in zip(variants, counts, strict=True))
        if cap >= demand - 1e-9:
            key = (cost, -cap, counts)
            if best is None or key < best:
                best = key
        else:
            fkey = (-cap, cost, counts)
            if fallback is None or fkey < fallback:
                fallback = fkey
    if best is not None:
        return dict(zip((v.pool for v in variants), best[2], strict=True)), True
    if fallback is not None:
        return dict(zip((v.pool for v in variants), fallback[2], strict=True)), False
    return {v.pool: v.min_replicas for v in variants}, False


def _greedy(
    variants: Sequence[Variant], demand: float, inventory: Mapping[str, int]
) -> tuple[dict[str, int], bool]:
    counts = {v.pool: v.min_replicas for v in variants}
    left = dict(inventory)
    for v in variants:
        if v.accelerator in left:
            left[v.accelerator] -= v.gpus_per_replica * v.min_replicas
    remaining = demand - mix_capacity(variants, counts)
    order = sorted(
        (v for v in variants if v.capacity_rps > 0),
        key=lambda v: v.price_per_replica_hour / v.capacity_rps,
    )
    for v in order:
        while remaining > 1e-9 and counts[v.pool] < v.max_replicas:
            if v.accelerator in left and left[v.accelerator] < v.gpus_per_replica:
                break
            counts[v.pool] += 1
            if v.accelerator in left:
                left[v.accelerator] -= v.gpus_per_replica
            remaining -= v.capacity_rps
    return counts, remaining <= 1e-9
