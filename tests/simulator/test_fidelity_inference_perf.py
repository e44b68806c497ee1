"""Acceptance: the simulator reproduces a measured vLLM rate sweep on one H100 (Llama-3-8B).

Reference: inference-perf's KubeCon NA 2025 sweep (``summary_by_stage.csv``, variant ``vllm``:
prefix caching and chunked prefill off). Targets: the saturation knee (achieved rate where TTFT p50
first exceeds 10x its lowest stage) within 15%, and TTFT p50 and ITL p50 within 25% in every
stage below the knee. See ``simulator/fidelity.py`` for how each side is measured. The second
variant (prefix caching and chunked prefill on) was not used for calibration: it checks that the
prefix cache model carries over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.fidelity import read_sweep, replay_sweep

SWEEP = (
    Path(__file__).resolve().parents[3]
    / "shared/data/calibration/inference_perf_h100_llama3_8b/summary_by_stage.csv"
)


@pytest.fixture(scope="module", params=["vllm", "vllm+chunking_and_prefix_caching"])
def comparison(request):
    if not SWEEP.exists():
        pytest.skip(f"calibration data not found at {SWEEP}")
    variant = request.param
    return replay_sweep(read_sweep(SWEEP, variant), prefix_caching=variant != "vllm")


def test_saturation_knee_within_15_percent(comparison) -> None:
    assert comparison.simulated_knee_stage == comparison.measured_knee_stage
    assert comparison.knee_error <= 0.15, (
        comparison.simulated_knee_rps,
        comparison.measured_knee_rps,
    )


def test_latencies_below_the_knee_within_25_percent(comparison) -> None:
    below = [s for s in comparison.stages if s.stage < comparison.measured_knee_stage]
    assert len(below) >= 4
    for s in below:
        ttft_err = abs(s.simulated_ttft_p50_s - s.measured_ttft_p50_s) / s.measured_ttft_p50_s
        itl_err = abs(s.simulated_itl_p50_s - s.measured_itl_p50_s) / s.measured_itl_p50_s
        assert ttft_err <= 0.25, (s.stage, s.simulated_ttft_p50_s, s.measured_ttft_p50_s)
        assert itl_err <= 0.25, (s.stage, s.simulated_itl_p50_s, s.measured_itl_p50_s)


def test_saturated_stages_queue_up(comparison) -> None:
    above = [s for s in comparison.stages if s.stage >= comparison.measured_knee_stage]
    floor = min(s.simulated_ttft_p50_s for s in comparison.stages)
    assert all(s.simulated_ttft_p50_s > 10 * floor for s in above)
