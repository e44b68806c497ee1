"""The controller benchmark runs (small), and metric queries per tick do not grow with pods."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_benchmark_and_queries_independent_of_pods() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_controller", ROOT / "benchmarks/bench_controller.py"
    )
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    few = bench.measure(policies=4, pools=2, pods=2, ticks=2)
    many = bench.measure(policies=4, pools=2, pods=6, ticks=2)
    assert few["metric_queries_per_tick"] == many["metric_queries_per_tick"]
    assert few["api_requests_per_tick"][1] == many["api_requests_per_tick"][1]  # not per pod
    # 1 list of policies + 1 scale per pool + 1 pod list per namespace + 1 status per policy
    assert many["api_requests_per_tick"][1] == 1 + 8 + 1 + 4
