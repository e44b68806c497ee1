"""Which controller drives a simulated run, by policy name.

``static`` keeps the scenario's replicas; ``static-peak`` fixes each pool at the replicas the
trace's peak demand needs at the SLO (the over-provisioned configuration operators run without an
autoscaler); ``slo`` is sloscaler's closed loop. A policy may also set the replicas the run starts
with (warm), which is how ``static-peak`` is applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from autoscaler.baseline_adapters import (
    dynamo_throughput_controller,
    hpa_kv_controller,
    keda_queue_controller,
    wva_saturation_controller,
)
from autoscaler.capacity import ProfileCapacityModel
from autoscaler.latency import ProfileLatencyEstimator
from autoscaler.learned_latency import (
    LearnedLatencyEstimator,
    LearningPredictedLatency,
    PoolKind,
)
from autoscaler.sim_adapter import pool_profiles, slo_controller, slo_params
from policies.routing import SCORERS, EndpointScorer, PredictedLatency, make_scorer
from policies.types import DemandMix, PoolSnapshot, SLOTarget
from simulator.control import Controller
from simulator.scenario import Scenario
from simulator.workload import Trace

Prepared = tuple[Scenario, Controller | None]
SCORER_NAMES = (*SCORERS, PredictedLatency.name)
PolicyFactory = Callable[[Scenario, Trace], Prepared]

PEAK_WINDOW_S = 60.0


def peak_rps(trace: Trace, window_s: float = PEAK_WINDOW_S) -> float:
    """Highest arrival rate over windows of ``window_s`` (requests per second)."""
    if not trace.requests:
        return 0.0
    t = np.array([r.arrival_s for r in trace.requests])
    counts = np.bincount((t // window_s).astype(int))
    return float(counts.max()) / window_s


def trace_mix(trace: Trace) -> DemandMix:
    """Mean prompt and output lengths, and the share of prompt tokens an unbounded prefix cache
    would hit: leading prefix units already seen in an earlier request."""
    reqs = trace.requests
    seen: set[tuple[int, ...]] = set()
    hit_tokens = 0
    for r in reqs:
        hits = 0
        for n in range(1, len(r.prefix_ids) + 1):
            key = r.prefix_ids[:n]
            if key in seen:
                hits = n
            else:
                seen.add(key)
        hit_tokens += min(r.input_tokens, hits * r.prefix_unit_tokens)
    total_in = sum(r.input_tokens for r in reqs)
    isl = total_in / len(reqs)
    osl = float(np.mean([r.output_tokens for r in reqs]))
    return DemandMix(isl, osl, hit_tokens / total_in)


def static_peak(scenario: Scenario, trace: Trace) -> Prepared:
    """Fixed replicas sized so the trace's peak (60 s windows) meets the SLO with headroom,
    within each pool's maximum and the scenario's GPU inventory (pools claim GPUs in order)."""
    params = slo_params(scenario)
    capacity = ProfileCapacityModel(pool_profiles(scenario))
    slo = SLOTarget(
        scenario.slo.ttft_ms / 1000, scenario.slo.tpot_ms / 1000, scenario.slo.attainment
    )
    peak = peak_rps(trace)
    mix = trace_mix(trace)
    for model in {p.model for p in scenario.pools}:
        rows = [
            (r.input_tokens, r.output_tokens) for r in trace.requests if (r.model or model) == model
        ]
        capacity.observe_requests(model, rows, 0.0)
    pools = []
    gpus_left = dict(scenario.inventory)  # accelerator → GPUs not yet claimed (absent: no limit)
    for p, spec in zip(scenario.pools, scenario.pool_specs(), strict=True):
        snap = PoolSnapshot(
            p.name,
            p.model,
            p.role,
            p.accelerator,
            p.gpus,
            spec.price_per_gpu_hour,
            p.replicas,
            p.replicas,
            0.0,
            None,
        )
        cap = capacity.capacity(snap, mix, slo).rps * (1 - params.headroom)
        n = math.ceil(peak / cap) if cap > 0 else p.max_replicas
        n = max(1, min(n, p.max_replicas))
        if p.accelerator in gpus_left:
            n = max(1, min(n, gpus_left[p.accelerator] // p.gpus))
            gpus_left[p.accelerator] -= n * p.gpus
        pools.append(p.model_copy(update={"replicas": n}))
    return scenario.model_copy(update={"pools": pools}), None


POLICIES: dict[str, PolicyFactory] = {
    "static": lambda scenario, trace: (scenario, None),
    "static-peak": static_peak,
    "slo": lambda scenario, trace: (scenario, slo_controller(scenario)),
    "hpa-kv": lambda scenario, trace: (scenario, hpa_kv_controller(scenario)),
    "keda-queue": lambda scenario, trace: (scenario, keda_queue_controller(scenario)),
    "wva-saturation": lambda scenario, trace: (scenario, wva_saturation_controller(scenario)),
    "dynamo-throughput": lambda scenario, trace: (scenario, dynamo_throughput_controller(scenario)),
}


def prepare_policy(name: str, scenario: Scenario, trace: Trace) -> Prepared:
    """The scenario to run (initial replicas) and its controller, for policy ``name``."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(
            f"--policy: unknown policy {name!r}; choose one of {', '.join(POLICIES)}"
        ) from None
    return factory(scenario, trace)


def build_scorer(scenario: Scenario) -> EndpointScorer:
    """The gateway scorer a scenario names; ``predicted-latency`` predicts with the pools'
    profiles, or with request-level models learned online (``gateway.latency_model``)."""
    name = scenario.gateway.scorer
    if name == PredictedLatency.name:
        profile = ProfileLatencyEstimator(pool_profiles(scenario))
        slo_ttft_s, slo_tpot_s = scenario.slo.ttft_ms / 1000, scenario.slo.tpot_ms / 1000
        if scenario.gateway.latency_model == "learned":
            kinds = {p.name: PoolKind(p.accelerator, p.role) for p in scenario.pools}
            learned = LearnedLatencyEstimator(profile, kinds)
            return LearningPredictedLatency(learned, slo_ttft_s, slo_tpot_s)
        return PredictedLatency(profile, slo_ttft_s, slo_tpot_s)
    try:
        return make_scorer(name)
    except ValueError as e:
        raise ValueError(
            f"gateway.scorer: unknown scorer {name!r}; choose one of {', '.join(SCORER_NAMES)}"
        ) from e
