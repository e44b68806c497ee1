"""The run report: one offline HTML document with every figure, robust to degenerate runs."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from simulator.cluster import DONE, FAILED, SHED, RequestRecords, Sample, SimulationOutput
from simulator.report import bin_by_time, latency_bin_s, p90, render_report
from simulator.summary import SLO, summarize
from simulator.workload import RequestSpec, Trace

SLO_ = SLO(ttft_ms=500.0, tpot_ms=50.0, attainment=0.9)
FIGURES = ("fig-replicas", "fig-latency", "fig-load")


def _pool(index: int, name: str, gpus: int = 2) -> Any:
    spec = SimpleNamespace(
        name=name,
        role="aggregated",
        accelerator="h100",
        gpus_per_replica=gpus,
        model="llama",
        price_per_gpu_hour=3.0,
    )
    return SimpleNamespace(
        index=index, spec=spec, scale_events=1, gpu_seconds=lambda end: end * gpus
    )


def _run(
    n_requests: int = 200,
    pools: tuple[str, ...] = ("alpha", "beta"),
    n_samples: int = 61,
    status: int | None = None,
    description: str = "hand-made run",
) -> Any:
    """A 600 s run: TTFT grows with arrival time, every 10th request shed, every 17th failed."""
    rng = np.random.default_rng(0)
    arrival = np.sort(rng.uniform(0, 600, n_requests))
    rec = RequestRecords.empty(n_requests)
    rec.arrival[:] = arrival
    rec.first_token[:] = arrival + 0.05 + arrival / 600.0
    rec.out_tokens[:] = 101
    rec.finish[:] = rec.first_token + 100 * 0.03
    rec.status[:] = DONE if status is None else status
    if status is None:
        rec.status[::10] = SHED
        rec.status[3::17] = FAILED
    rec.pool[:] = np.arange(n_requests) % len(pools)
    k = len(pools)
    samples = [
        Sample(
            t=10.0 * i,
            arrivals=int(((arrival > 10.0 * (i - 1)) & (arrival <= 10.0 * i)).sum()),
            queue=i % 3,
            replicas=[1 + i // 20] * k,
            ready=[1 + max(0, i - 3) // 20] * k,
            running=[i % 7] * k,
            waiting=[i % 4] * k,
            kv_usage=[0.5] * k,
        )
        for i in range(n_samples)
    ]
    trace = Trace("synthetic-poisson", tuple(RequestSpec(float(a), 100, 101) for a in arrival))
    out = SimulationOutput(
        trace=trace,
        pools=[_pool(i, name) for i, name in enumerate(pools)],
        records=rec,
        samples=samples,
        end_s=610.0,
        sample_interval_s=10.0,
        controller="sloscaler",
    )
    summary = summarize(out, SLO_, scenario="hand", policy="sloscaler", seed=7, wall_seconds=1.5)
    scenario = SimpleNamespace(name="hand", description=description, slo=SLO_)
    return SimpleNamespace(scenario=scenario, output=out, summary=summary)


def _without_plotlyjs(doc: str) -> str:
    return doc.replace(get_plotlyjs(), "")


def test_report_is_one_offline_document_with_every_figure() -> None:
    result = _run()
    doc = render_report(result)

    assert doc.startswith("<!DOCTYPE html>")
    assert doc.count("<html") == doc.count("</html>") == 1
    assert doc.count(get_plotlyjs()) == 1
    rest = _without_plotlyjs(doc)
    for remote in ('src="http', "src='http", 'href="http', "https://cdn", "@import", "url(http"):
        assert remote not in rest
    for fig in FIGURES:
        assert f'id="{fig}"' in rest
        assert re.search(rf'Plotly\.newPlot\(\s*"{fig}"', rest)
    for name in ("alpha", "beta", "synthetic-poisson", "hand-made run"):
        assert name in rest
    assert f"{result.summary['slo_attainment'] * 100:.2f} %" in rest


def test_report_escapes_text_and_is_deterministic() -> None:
    result = _run(description="<script>alert(1)</script>")
    doc = render_report(result)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "<script>alert(1)" not in doc
    assert render_report(result) == doc


@pytest.mark.parametrize(
    ("run", "drawn", "note"),
    [
        pytest.param(
            {"n_samples": 0}, ["fig-latency"], "The run recorded no samples.", id="no-samples"
        ),
        pytest.param(
            {"status": SHED}, ["fig-replicas", "fig-load"], "No request completed", id="all-shed"
        ),
        pytest.param({"pools": ("solo",)}, list(FIGURES), None, id="one-pool"),
        pytest.param(
            {"n_requests": 0},
            ["fig-replicas", "fig-load"],
            "No request completed",
            id="no-requests",
        ),
        pytest.param({"n_requests": 1, "status": DONE}, list(FIGURES), None, id="one-request"),
    ],
)
def test_degenerate_runs_render_with_a_note(
    run: dict[str, Any], drawn: list[str], note: str | None
) -> None:
    doc = _without_plotlyjs(render_report(_run(**run)))
    assert doc.rstrip().endswith("</html>")
    assert [f for f in FIGURES if f'id="{f}"' in doc] == drawn
    if note is not None:
        assert note in doc


def test_binned_p90_is_numpys_percentile_per_bin() -> None:
    times = [0.0, 5.0, 59.9, 60.0, 61.0, 119.0, 120.0, 200.0]
    ttft = [0.1, 0.9, 0.3, 2.0, 4.0, 1.0, 7.0, 8.0]
    starts, got = bin_by_time(times, ttft, 60.0, 200.0, p90)

    np.testing.assert_array_equal(starts, [0.0, 60.0, 120.0, 180.0])
    expected = [
        np.percentile([0.1, 0.9, 0.3], 90),
        np.percentile([2.0, 4.0, 1.0], 90),
        7.0,
        8.0,  # t = end_s joins the last bin
    ]
    np.testing.assert_allclose(got, expected)


def test_empty_bins_are_nan_not_zero() -> None:
    _, got = bin_by_time([10.0, 250.0], [1.0, 3.0], 60.0, 300.0, p90)
    np.testing.assert_array_equal(np.isnan(got), [False, True, True, True, False])


@pytest.mark.parametrize(
    ("span_s", "bin_s"), [(0.0, 1.0), (300.0, 10.0), (3600.0, 60.0), (86_400.0, 300.0)]
)
def test_latency_bins_stay_near_a_minute_and_under_300(span_s: float, bin_s: float) -> None:
    assert latency_bin_s(span_s) == bin_s
    assert span_s / bin_s <= 300
