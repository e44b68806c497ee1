"""Run a scenario end to end: build its trace and cluster, replay, summarize.

This is the one entry point the CLI, the benchmarks and the tests share, so a result printed by
``sloscaler simulate`` is exactly what the tests and ``docs/benchmarks.md`` measure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.routing import EndpointScorer, make_scorer
from simulator.cluster import Cluster, GatewayConfig, SampleHook, SimulationOutput
from simulator.control import Controller, LearnsFromRequests
from simulator.perf.transport import transport
from simulator.scenario import Scenario, ScenarioError
from simulator.scenario_trace import trace_for_scenario
from simulator.summary import summarize
from simulator.traces import load_trace
from simulator.workload import Trace


@dataclass(slots=True)
class RunResult:
    scenario: Scenario
    output: SimulationOutput
    summary: dict[str, Any]


def build_trace(
    scenario: Scenario, trace_path: str | Path | None = None, seed: int | None = None
) -> Trace:
    """The scenario's trace, or ``trace_path`` instead (any supported format), cut to the
    scenario's window."""
    seed = scenario.seed if seed is None else seed
    base = Path(scenario.source).parent if scenario.source else Path.cwd()
    if trace_path is not None:
        trace = load_trace(Path(trace_path))
        spec = scenario.trace
        if spec.start_s or spec.duration_s:
            end = spec.start_s + spec.duration_s if spec.duration_s else float("inf")
            trace = trace.window(spec.start_s, end)
        return trace
    return trace_for_scenario(scenario.trace, seed=seed, base_dir=base)


def run_scenario(
    scenario: Scenario,
    *,
    controller: Controller | None = None,
    policy_name: str | None = None,
    trace_path: str | Path | None = None,
    duration_s: float | None = None,
    seed: int | None = None,
    progress: Callable[[float, float], None] | None = None,
    sample_hooks: tuple[tuple[float, SampleHook], ...] = (),
    trace: Trace | None = None,
    scorer: EndpointScorer | None = None,
) -> RunResult:
    """Replay ``scenario`` with ``controller`` (``None`` = static replicas) and summarize."""
    seed = scenario.seed if seed is None else seed
    if trace is None:
        trace = build_trace(scenario, trace_path, seed)
    if duration_s is not None:
        trace = trace.window(0.0, duration_s)
    if not trace.requests:
        raise ScenarioError(f"{scenario.name}: the trace has no requests")
    gw = scenario.gateway
    if scorer is None:
        try:
            scorer = make_scorer(gw.scorer)
        except ValueError as e:
            raise ScenarioError(f"{scenario.name}: gateway.scorer: {e}") from None
    cluster = Cluster(
        scenario.pool_specs(),
        trace,
        scorer,
        transport(gw.transport),
        GatewayConfig(gw.scorer, gw.queue_timeout_s, gw.transport),
        controller=controller,
        seed=seed,
        sample_interval_s=scenario.sample_interval_s,
        sample_hooks=sample_hooks,
    )
    t0 = time.perf_counter()
    out = cluster.run(progress=progress)
    wall = time.perf_counter() - t0
    learned = scorer.report() if isinstance(scorer, LearnsFromRequests) else {}
    summary = summarize(
        out,
        scenario.slo_spec,
        scenario=scenario.name,
        policy=policy_name or (controller.name if controller else "static"),
        seed=seed,
        wall_seconds=wall,
        gateway={"scorer": scorer.name, **learned},
    )
    return RunResult(scenario, out, summary)
