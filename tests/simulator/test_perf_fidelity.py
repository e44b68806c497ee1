"""Acceptance: the shipped profiles reproduce the measurements they were calibrated to.

Each check recomputes the measured quantity straight from the shared CSV files (not through the
calibration code), so a wrong mapping in the calibration cannot hide here.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from statistics import median

import pytest

from simulator.perf.catalog import BLOCK_TOKENS, load_catalog

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "calibration"
SPLITWISE_HW = {"a100-80gb": "a100", "h100-80gb": "h100"}
MAX_NUM_SEQS = 128


@pytest.fixture(scope="module")
def catalog():
    assert DATA.is_dir(), f"shared measurements not found at {DATA}"
    return load_catalog()


def _splitwise_rows():
    with (DATA / "splitwise_perf_model.csv").open() as f:
        return [
            r
            for r in csv.DictReader(f)
            if r["model"] == "llama2-70b" and r["hardware"] in SPLITWISE_HW
        ]


def test_splitwise_prefill_and_decode_within_15_percent_mape(catalog):
    """Per (hardware, TP): prefill of the whole batch and one decode step of the batch."""
    errors = defaultdict(lambda: ([], []))
    for r in _splitwise_rows():
        hw, tp = SPLITWISE_HW[r["hardware"]], int(r["tensor_parallel"])
        profile = catalog.profile(hw, "llama-2-70b", tp)
        b, prompt, gen = int(r["batch_size"]), int(r["prompt_size"]), int(r["token_size"])
        if b * (prompt + gen) > profile.kv_blocks * BLOCK_TOKENS:
            continue  # the batch cannot fit vLLM's KV cache on this deployment
        step = profile.step
        prefill = step.step_time(b * prompt, b * prompt * prompt / 2, 0, 0)
        decode = step.step_time(0, 0.0, b, round(b * (prompt + gen / 2)))
        pre, dec = errors[(hw, tp)]
        pre.append(abs(prefill - float(r["prompt_time"]) / 1e3) / (float(r["prompt_time"]) / 1e3))
        dec.append(abs(decode - float(r["token_time"]) / 1e3) / (float(r["token_time"]) / 1e3))
    assert set(errors) == {(hw, tp) for hw in ("a100", "h100") for tp in (2, 4, 8)}
    table = {k: (median(p), median(d)) for k, (p, d) in errors.items()}
    bad = {k: v for k, v in table.items() if max(v) > 0.15}
    assert not bad, f"MAPE above 15% (prefill, decode): {bad}"


def test_infeasible_splitwise_batches_are_the_only_ones_left_out(catalog):
    """Only TP2 at batch 64 (41k tokens of KV on ~36k tokens of capacity) is excluded."""
    left_out = set()
    for r in _splitwise_rows():
        tp = int(r["tensor_parallel"])
        p = catalog.profile(SPLITWISE_HW[r["hardware"]], "llama-2-70b", tp)
        if int(r["batch_size"]) * (int(r["prompt_size"]) + int(r["token_size"])) > p.kv_tokens:
            left_out.add((tp, int(r["batch_size"])))
    assert left_out == {(2, 64)}


def _sweep():
    path = DATA / "inference_perf_h100_llama3_8b" / "summary_by_stage.csv"
    with path.open() as f:
        return [r for r in csv.DictReader(f) if r["variant"] == "vllm"]


def _utilisation(step, rate, prompt=204.1, output=62.4, cached=0):
    """GPU-seconds per second for ``rate`` req/s when every step decodes 128 sequences.

    Each request needs ``output − 1`` decode steps; each full step carries 128 of them plus the
    ``128/(output − 1)`` prompts admitted to replace the finished ones.
    """
    prompts = MAX_NUM_SEQS / (output - 1)
    new = prompt - cached
    t = step.step_time(
        round(prompts * new),
        prompts * new * (cached + new / 2),
        MAX_NUM_SEQS,
        round(MAX_NUM_SEQS * (prompt + output / 2)),
    )
    return rate * (output - 1) / MAX_NUM_SEQS * t


def test_h100_llama3_8b_saturates_where_the_sweep_did(catalog):
    step = catalog.profile("h100", "llama-3-8b", 1).step
    rows = _sweep()
    knee = median(float(r["achieved_rate"]) for r in rows[4:])  # stages 4-6 saturated, ~106
    assert knee == pytest.approx(106, abs=1)
    assert 0.95 <= _utilisation(step, 106) <= 1.05
    assert _utilisation(step, 92) < 0.92
    # prefix caching skips the 128-token system prompt: the same GPU saturated at ~176 req/s
    assert 0.93 <= _utilisation(step, 176, cached=128) <= 1.05


def test_h100_llama3_8b_low_load_decode_step_and_ttft(catalog):
    profile = catalog.profile("h100", "llama-3-8b", 1)
    stage0 = _sweep()[0]
    measured_step = (
        float(stage0["request_latency_median_s"]) - float(stage0["time_to_first_token_median_s"])
    ) / (float(stage0["output_len_mean"]) - 1)
    assert measured_step == pytest.approx(7.22e-3, abs=0.05e-3)
    alpha, beta = profile.step.decode_affine(1)
    assert alpha + beta * 235 == pytest.approx(measured_step, rel=0.05)
    # TTFT at 1 req/s = frontend + one 204-token prefill (+ a little queueing and idle wake-up)
    ttft = profile.frontend_overhead_s + profile.step.prefill_time(204)
    assert ttft == pytest.approx(float(stage0["time_to_first_token_median_s"]), rel=0.25)
    assert ttft < float(stage0["time_to_first_token_median_s"])


def test_wide_ep_reaches_the_llm_d_figure(catalog):
    """DeepSeek-V3 on 16 H200: 128 sequences of 2,048 tokens per GPU → ~2,200 tokens/s/GPU."""
    p = catalog.profile("h200", "deepseek-v3", 16)
    d = 128 * 16
    alpha, beta = p.step.decode_affine(d)
    per_gpu = d / (alpha + beta * d * 2048) / 16
    assert per_gpu == pytest.approx(2200, rel=0.02)


@pytest.mark.parametrize(
    ("faster", "slower", "model", "gpus"),
    [
        ("h200", "h100", "llama-3-8b", 1),
        ("h100", "a100", "llama-3-70b", 4),
        ("h100", "l40s", "llama-3-8b", 1),
        ("h100", "tpu-v5e", "llama-3-8b", 4),
    ],
)
def test_derived_accelerators_keep_the_spec_sheet_order(catalog, faster, slower, model, gpus):
    """Decode of a 64-sequence batch is memory bound: more HBM bandwidth, shorter step."""
    f, s = (catalog.profile(a, model, gpus).step.decode_affine(64) for a in (faster, slower))
    assert f[0] + f[1] * 64 * 1000 < s[0] + s[1] * 64 * 1000
