"""Capacity at an SLO: bisection on monotone models, the analytic fallback, the real H100 sweep."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.capacity import (
    AcceleratorProfile,
    Limit,
    Source,
    Workload,
    analytic_point,
    capacity_at_slo,
    learned_point,
)
from predictor.outcomes import NotReadyReason
from predictor.training import TrainingResult

H100 = AcceleratorProfile("H100", 24_000.0, 6.0, 0.09, 400_000, 128)

SWEEP = (
    Path(__file__).resolve().parents[3]
    / "shared/data/calibration/inference_perf_h100_llama3_8b/summary_by_stage.csv"
)
# Fitted (least squares on log p90 TTFT and TPOT, stages 0-3 of the "vllm" variant) to the
# inference-perf sweep of Llama-3-8B on one H100.
H100_LLAMA3_8B = AcceleratorProfile(
    "H100",
    prefill_tokens_per_s=34_186.0,
    itl_base_ms=3.327,
    itl_per_seq_ms=0.01085,
    kv_capacity_tokens=1e6,
    max_num_seqs=256,
    ttft_overhead_ms=23.5,
)


def test_analytic_worked_example() -> None:
    point = analytic_point(H100, Workload(1000, 200, 0.0), 10.0)
    # t_p = 1000/24000 s, ρ = 0.4167, α' = 6/(1-ρ), β' = 0.09/(1-ρ)
    rho = 10 * 1000 / 24_000
    alpha, beta = 6 / (1 - rho), 0.09 / (1 - rho)
    running = 10 * (1000 / 24_000 + 200 * alpha / 1000) / (1 - 10 * 200 * beta / 1000)
    assert point.running == pytest.approx(running)
    assert point.running == pytest.approx(30.35, abs=0.01)
    wait90 = math.log(rho / 0.1) / (24 - 10)
    assert point.ttft_s == pytest.approx(wait90 + 1000 / 24_000 + (alpha + beta * running) / 1000)
    assert point.violation is None


def test_analytic_saturates_at_prefill_throughput() -> None:
    point = analytic_point(H100, Workload(1000, 200, 0.0), 24.0)
    assert point.violation is Limit.PREFILL_SATURATION
    assert math.isinf(point.ttft_s)


def test_capacity_meets_the_slo_and_just_above_does_not() -> None:
    est = capacity_at_slo(None, 1000, 200, 0.0, 0.3, 0.025, profile=H100)
    assert est.source is Source.ANALYTIC
    assert 0 < est.rate_rps < 24
    assert est.at_capacity.ttft_s <= 0.3
    assert est.at_capacity.tpot_s <= 0.025
    above = analytic_point(H100, Workload(1000, 200, 0.0), est.rate_rps * 1.01)
    assert above.ttft_s > 0.3 or above.tpot_s > 0.025 or above.violation is not None
    assert est.limited_by in (Limit.TTFT, Limit.TPOT)


def test_an_slo_below_idle_latency_gives_zero() -> None:
    est = capacity_at_slo(None, 1000, 200, 0.0, 0.001, 1.0, profile=H100)
    assert est.rate_rps == 0.0
    assert est.limited_by is Limit.TTFT


def test_prefix_hits_raise_capacity() -> None:
    cold = capacity_at_slo(None, 4000, 100, 0.0, 0.5, 0.05, profile=H100).rate_rps
    warm = capacity_at_slo(None, 4000, 100, 0.8, 0.5, 0.05, profile=H100).rate_rps
    assert warm > cold


slo = st.tuples(st.floats(0.05, 3.0), st.floats(0.01, 0.2))


@settings(max_examples=40, deadline=None)
@given(a=slo, b=slo, isl=st.integers(50, 4000), osl=st.integers(4, 800))
def test_analytic_capacity_is_monotone_in_the_slo(
    a: tuple[float, float], b: tuple[float, float], isl: int, osl: int
) -> None:
    loose = (max(a[0], b[0]), max(a[1], b[1]))
    tight = (min(a[0], b[0]), min(a[1], b[1]))
    hi = capacity_at_slo(None, isl, osl, 0.2, *loose, profile=H100).rate_rps
    lo = capacity_at_slo(None, isl, osl, 0.2, *tight, profile=H100).rate_rps
    assert hi >= lo * (1 - 2e-3)


@settings(max_examples=15, deadline=None)
@given(a=slo, b=slo)
def test_learned_capacity_is_monotone_in_the_slo(
    trained: TrainingResult, a: tuple[float, float], b: tuple[float, float]
) -> None:
    loose = (max(a[0], b[0]), max(a[1], b[1]))
    tight = (min(a[0], b[0]), min(a[1], b[1]))
    hi = capacity_at_slo(trained.model, 700, 180, 0.25, *loose, profile=H100)
    lo = capacity_at_slo(trained.model, 700, 180, 0.25, *tight, profile=H100)
    assert hi.source is Source.LEARNED
    assert hi.rate_rps >= lo.rate_rps * (1 - 2e-3)


def test_learned_latency_rises_with_rate(trained: TrainingResult) -> None:
    w = Workload(700, 180, 0.25)
    points = [
        learned_point(trained.model, H100, w, r, accelerator="H100") for r in (1, 5, 10, 20, 30)
    ]
    for p, q in itertools.pairwise(points):
        assert q.running >= p.running
        assert q.ttft_s >= p.ttft_s
        assert q.tpot_s >= p.tpot_s


def test_falls_back_to_analytic_when_the_model_is_not_ready(trained: TrainingResult) -> None:
    tpu = AcceleratorProfile("TPU-v5e", 20_000.0, 8.0, 0.1, 300_000, 128)
    est = capacity_at_slo(trained.model, 700, 180, 0.0, 0.5, 0.05, profile=tpu)
    assert est.source is Source.ANALYTIC
    assert est.fallback_reason is not None
    assert est.fallback_reason.reason is NotReadyReason.UNKNOWN_ACCELERATOR
    assert est.rate_rps == capacity_at_slo(None, 700, 180, 0.0, 0.5, 0.05, profile=tpu).rate_rps


def _sweep_rows(variant: str) -> list[dict[str, str]]:
    with SWEEP.open() as fh:
        return [r for r in csv.DictReader(fh) if r["variant"] == variant]


@pytest.mark.skipif(not SWEEP.exists(), reason="calibration data not present")
def test_analytic_profile_reproduces_the_real_h100_sweep_below_saturation() -> None:
    for row in _sweep_rows("vllm")[:4]:
        w = Workload(float(row["prompt_len_mean"]), float(row["output_len_mean"]))
        p = analytic_point(H100_LLAMA3_8B, w, float(row["achieved_rate"]))
        assert p.tpot_s == pytest.approx(float(row["time_per_output_token_p90_s"]), rel=0.10)
        assert p.ttft_s == pytest.approx(float(row["time_to_first_token_p90_s"]), rel=0.10)


@pytest.mark.skipif(not SWEEP.exists(), reason="calibration data not present")
def test_h100_capacity_lies_between_the_last_good_stage_and_saturation() -> None:
    # Measured: 92 req/s meets p90 TTFT ≤ 100 ms and TPOT ≤ 10 ms; the server saturates at
    # 106.5 req/s (TTFT p90 > 3 s). The analytic answer must fall between, give or take 15%.
    est = capacity_at_slo(None, 204, 62, 0.0, 0.100, 0.010, profile=H100_LLAMA3_8B)
    assert 92.0 * 0.95 <= est.rate_rps <= 106.5 * 1.15
