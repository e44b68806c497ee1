"""The step-time model: its formula, the exact decode-affine form the engine needs, validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.perf.model import StepTimeModel, prefill_attn_pairs

AFFINE = StepTimeModel(
    c0_s=0.002,
    prefill_token_s=1e-5,
    prefill_attn_s=2e-9,
    decode_seq_s=3e-5,
    kv_token_s=5e-8,
    tp_fixed_s=0.004,
    tp_token_s=1e-5,
)
ROOFLINE = StepTimeModel(
    c0_s=0.002,
    prefill_token_s=1.8e-5,
    prefill_attn_s=2e-9,
    decode_seq_s=1e-6,
    kv_token_s=5.2e-8,
    linear_floor_s=0.0053,
    linear_token_s=1.5e-5,
    prefill_step_s=0.001,
)


def test_plain_affine_form_matches_the_formula():
    # 512 prefill tokens after 128 computed, plus 10 decodes holding 3,000 tokens
    a = prefill_attn_pairs(512, 128)
    expected = 0.002 + 512 * 1e-5 + a * 2e-9 + 10 * 3e-5 + 3000 * 5e-8 + 0.004 + 522 * 1e-5
    assert AFFINE.step_time(512, a, 10, 3000) == pytest.approx(expected, rel=1e-12)


def test_attention_pairs_worked_example():
    assert prefill_attn_pairs(76, 128) == 76 * (128 + 38) == 12_616
    assert prefill_attn_pairs(204, 0) == 204 * 102


@pytest.mark.parametrize(
    ("tokens", "expected_linear"),
    [(1, 0.0053), (300, 0.0053), (1000, 0.015)],  # floor below 353 tokens, 15 µs/token above
)
def test_linear_layers_follow_the_roofline(tokens, expected_linear):
    t = ROOFLINE.step_time(0, 0.0, tokens, 0)
    assert t == pytest.approx(0.002 + expected_linear + tokens * 1e-6, rel=1e-12)


def test_prefill_step_cost_only_when_a_step_prefills():
    decode_only = ROOFLINE.step_time(0, 0.0, 4, 400)
    with_prefill = ROOFLINE.step_time(1, 0.5, 4, 400)
    assert with_prefill - decode_only == pytest.approx(0.001 + 1.8e-5 + 1e-9, rel=1e-9)


def test_empty_step_takes_no_time():
    assert ROOFLINE.step_time(0, 0.0, 0, 0) == 0.0


@given(
    n=st.integers(min_value=1, max_value=2048),
    ctx=st.integers(min_value=0, max_value=2_000_000),
    model=st.sampled_from([AFFINE, ROOFLINE]),
)
def test_decode_affine_is_exact(n, ctx, model):
    alpha, beta = model.decode_affine(n)
    assert alpha + beta * ctx == pytest.approx(model.step_time(0, 0.0, n, ctx), rel=1e-12)


def test_decode_affine_needs_a_sequence():
    with pytest.raises(ValueError, match="at least one sequence"):
        ROOFLINE.decode_affine(0)


@pytest.mark.parametrize("bad", [-1e-6, math.nan])
def test_coefficients_must_be_non_negative_numbers(bad):
    with pytest.raises(ValueError, match="kv_token_s"):
        StepTimeModel(0.0, 0.0, 0.0, 0.0, bad)


@given(
    p=st.integers(0, 8192),
    d=st.integers(0, 512),
    extra_p=st.integers(1, 512),
    extra_d=st.integers(1, 64),
)
def test_more_work_never_takes_less_time(p, d, extra_p, extra_d):
    base = ROOFLINE.step_time(p, prefill_attn_pairs(p, 0), d, d * 300)
    more_p = ROOFLINE.step_time(p + extra_p, prefill_attn_pairs(p + extra_p, 0), d, d * 300)
    more_d = ROOFLINE.step_time(p, prefill_attn_pairs(p, 0), d + extra_d, (d + extra_d) * 300)
    assert more_p >= base
    assert more_d >= base


def test_prefill_time_helper():
    cached = ROOFLINE.prefill_time(204, cached_tokens=128)
    assert cached == ROOFLINE.step_time(76, prefill_attn_pairs(76, 128), 0, 0)
    assert cached < ROOFLINE.prefill_time(204)


def test_as_dict_round_trips():
    assert StepTimeModel(**ROOFLINE.as_dict()) == ROOFLINE
