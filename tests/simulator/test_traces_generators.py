"""Synthetic and ServeGen generators: reproducible from a seed, on target within statistical bounds.

Tolerances are a few standard errors of the quantity tested, stated next to each check, so a
failure means a biased generator rather than an unlucky seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from simulator.traces import (
    EmpiricalLengths,
    FixedLengths,
    LogNormalLengths,
    RateProfile,
    ServeGenParams,
    SharedPrefix,
    bundled_trace,
    diurnal_trace,
    gamma_shape_scale,
    gamma_trace,
    generate_servegen_trace,
    load_bundled,
    load_servegen_curves,
    poisson_trace,
    renewal_arrivals,
    step_trace,
)
from simulator.traces.lengths import lognormal_mu, lognormal_tokens, sigma_for_cv
from simulator.traces.servegen import ServeGenCurves
from simulator.workload import Trace


def _arrivals(trace: Trace) -> np.ndarray:
    return np.array([r.arrival_s for r in trace.requests])


def _gap_cv(arrivals: np.ndarray) -> float:
    gaps = np.diff(arrivals)
    return float(gaps.std() / gaps.mean())


@pytest.fixture(scope="module")
def m_large() -> ServeGenCurves:
    return load_servegen_curves(bundled_trace("servegen-m-large"))


# --- worked examples from the docstrings -------------------------------------------------------


def test_docstring_examples() -> None:
    profile = RateProfile.steps([(60, 2), (30, 10)])
    assert profile.edges_s.tolist() == [0, 60, 90]
    assert profile.cumulative().tolist() == [0, 120, 420]
    assert gamma_shape_scale(10, 2) == (0.25, 0.4)
    assert float(lognormal_mu(355, 1.0)) == pytest.approx(5.372, abs=1e-3)
    assert math.exp(float(lognormal_mu(355, 1.0))) == pytest.approx(215, abs=1)
    assert sigma_for_cv(0.96) == pytest.approx(0.81, abs=0.005)
    assert RateProfile.sinusoid(2, 10, 3600, 3600, windows_per_period=3600).rate_rps[
        899:901
    ].mean() == pytest.approx(6, abs=0.01)


def test_time_rescaling_maps_operational_time_through_the_profile() -> None:
    # With CV 0 the unit-rate events are u = 1, 2, ..., so event 150 lands at t = 60 + 30/10.
    profile = RateProfile.steps([(60, 2), (30, 10)])
    times = renewal_arrivals(profile, np.random.default_rng(0), cv=0.0)
    assert times.size == 419
    assert times[149] == pytest.approx(63.0)
    assert np.allclose(np.diff(times[:119]), 0.5)
    assert np.allclose(np.diff(times[120:]), 0.1)


def test_zero_rate_windows_get_no_arrivals() -> None:
    profile = RateProfile.steps([(100, 5), (100, 0), (100, 5)])
    times = renewal_arrivals(profile, np.random.default_rng(1), cv=1.5)
    assert not np.any((times >= 100) & (times < 200))
    assert times.size > 0


# --- reproducibility -------------------------------------------------------------------------


GENERATORS: dict[str, Callable[[int | np.random.Generator], Trace]] = {
    "poisson": lambda seed: poisson_trace(20, 60, seed=seed),
    "gamma": lambda seed: gamma_trace(20, 2.5, 60, seed=seed),
    "diurnal": lambda seed: diurnal_trace(1, 30, 60, 120, seed=seed),
    "step": lambda seed: step_trace([(30, 5), (30, 40)], seed=seed),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generators_are_reproducible_from_the_seed(kind: str) -> None:
    make = GENERATORS[kind]
    assert make(7).requests == make(7).requests
    assert make(7).requests != make(8).requests
    assert make(np.random.default_rng(7)).requests == make(7).requests


def test_servegen_is_reproducible(m_large: ServeGenCurves) -> None:
    params = ServeGenParams(duration_s=6 * 3600, time_compression=6.0, target_mean_rps=2.0)
    a = generate_servegen_trace(m_large, params)
    b = generate_servegen_trace(m_large, params)
    c = generate_servegen_trace(m_large, ServeGenParams(duration_s=6 * 3600, seed=1))
    assert a.requests == b.requests
    assert a.requests != c.requests


# --- rates and burstiness ----------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "cv"), [(50.0, 1.0), (20.0, 0.5), (20.0, 3.0)])
def test_constant_rate_hits_target_rate_and_cv(rate: float, cv: float) -> None:
    duration = 1000.0
    trace = (
        poisson_trace(rate, duration, seed=11)
        if cv == 1.0
        else gamma_trace(rate, cv, duration, seed=11)
    )
    arrivals = _arrivals(trace)
    expected = rate * duration
    # count of a renewal process: variance ≈ expected · CV²; allow 4σ
    assert abs(arrivals.size - expected) < 4 * math.sqrt(expected) * cv
    # the sample CV of gamma gaps has relative error ≈ √((κ − 1)/4n), κ = 3 + 6·CV²; allow 4σ
    kurtosis = 3 + 6 * cv**2
    rel_err = math.sqrt((kurtosis - 1) / (4 * arrivals.size))
    assert _gap_cv(arrivals) == pytest.approx(cv, rel=4 * rel_err)
    assert arrivals.min() >= 0
    assert arrivals.max() < duration


def test_cv_zero_is_evenly_spaced() -> None:
    arrivals = _arrivals(gamma_trace(4.0, 0.0, 10.0, seed=0))
    assert np.allclose(np.diff(arrivals), 0.25)


def test_diurnal_follows_the_sinusoid() -> None:
    trace = diurnal_trace(2.0, 10.0, 3600.0, 7200.0, seed=5)
    arrivals = _arrivals(trace)
    # two whole periods: mean (2 + 10)/2 = 6 rps → 43,200 requests, σ ≈ 208
    assert abs(arrivals.size - 43_200) < 4 * 208
    # first quarter period (trough side): ∫ = 900·6 − 8/2·3600/(2π) ≈ 3108 requests
    expected_trough = 900 * 6 - 4 * 3600 / (2 * math.pi)
    in_trough = np.sum(arrivals < 900)
    assert abs(in_trough - expected_trough) < 4 * math.sqrt(expected_trough)
    # the quarter centred on the peak (1350–2250 s): ∫ = 900·6 + 4·3600/(2π)·√2 ≈ 8642 requests
    expected_peak = 900 * 6 + 4 * 3600 / (2 * math.pi) * math.sqrt(2)
    in_peak = np.sum((arrivals >= 1350) & (arrivals < 2250))
    assert abs(in_peak - expected_peak) < 4 * math.sqrt(expected_peak)


def test_step_stages_have_their_rates() -> None:
    trace = step_trace([(300, 5), (300, 40), (300, 5)], cv=2.0, seed=2)
    arrivals = _arrivals(trace)
    for start, rate in [(0, 5), (300, 40), (600, 5)]:
        count = np.sum((arrivals >= start) & (arrivals < start + 300))
        expected = 300 * rate
        assert abs(count - expected) < 4 * math.sqrt(expected) * 2.0


# --- lengths, prefixes, priorities --------------------------------------------------------------


def test_lognormal_lengths_hit_their_means() -> None:
    lengths = LogNormalLengths(mean_input_tokens=1024, mean_output_tokens=256)
    inputs, outputs = lengths.sample(np.random.default_rng(3), 40_000)
    # lognormal σ = 0.8 has CV 0.95 → relative standard error of the mean 0.47%; allow 4σ
    assert inputs.mean() == pytest.approx(1024, rel=0.02)
    assert outputs.mean() == pytest.approx(256, rel=0.02)
    assert inputs.min() >= 1
    assert outputs.max() <= lengths.max_output_tokens


def test_lognormal_tokens_are_clipped() -> None:
    draws = lognormal_tokens(np.random.default_rng(0), np.full(10_000, 50.0), 2.0, 100)
    assert draws.min() >= 1
    assert draws.max() == 100


def test_fixed_and_empirical_lengths() -> None:
    trace = poisson_trace(10, 30, lengths=FixedLengths(128, 64), seed=1)
    assert {(r.input_tokens, r.output_tokens) for r in trace.requests} == {(128, 64)}
    code = load_bundled("azure-code-2023")
    pairs = {(r.input_tokens, r.output_tokens) for r in code.requests}
    resampled = poisson_trace(50, 60, lengths=EmpiricalLengths.from_trace(code), seed=1)
    assert {(r.input_tokens, r.output_tokens) for r in resampled.requests} <= pairs
    mean_in = np.mean([r.input_tokens for r in resampled.requests])
    # code prompts: mean 2048, std 1974 → standard error ≈ 36 at 3,000 draws; allow 4σ
    assert mean_in == pytest.approx(2047.8, abs=4 * 1974 / math.sqrt(len(resampled.requests)))


def test_shared_prefix_groups() -> None:
    prefix = SharedPrefix(groups=4, tokens=128, fraction=0.75)
    trace = poisson_trace(50, 100, lengths=FixedLengths(64, 16), prefix=prefix, seed=4)
    with_prefix = [r for r in trace.requests if r.prefix_ids]
    share = len(with_prefix) / len(trace.requests)
    n = len(trace.requests)
    assert share == pytest.approx(0.75, abs=4 * math.sqrt(0.75 * 0.25 / n))
    assert {r.prefix_ids for r in with_prefix} == {(0,), (1,), (2,), (3,)}
    assert all(r.input_tokens == 192 and r.shared_prefix_tokens == 128 for r in with_prefix)
    assert all(
        r.input_tokens == 64 and r.shared_prefix_tokens == 0
        for r in trace.requests
        if not r.prefix_ids
    )


def test_sheddable_fraction_and_model() -> None:
    trace = poisson_trace(50, 100, sheddable_fraction=0.2, model="m", seed=6)
    n = len(trace.requests)
    shed = sum(r.sheddable for r in trace.requests) / n
    assert shed == pytest.approx(0.2, abs=4 * math.sqrt(0.2 * 0.8 / n))
    assert {r.priority for r in trace.requests} == {-1, 0}
    assert {r.model for r in trace.requests} == {"m"}


def test_generator_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="sheddable_fraction"):
        poisson_trace(1, 10, sheddable_fraction=1.5)
    with pytest.raises(ValueError, match="cv"):
        gamma_trace(1, -1, 10)
    with pytest.raises(ValueError, match="stage"):
        step_trace([])
    with pytest.raises(ValueError, match="min_rps"):
        diurnal_trace(5, 1, 60, 60)


# --- ServeGen curves ---------------------------------------------------------------------------


def test_servegen_curves_read_as_published(m_large: ServeGenCurves) -> None:
    assert m_large.start_s.size == 2016
    assert np.all(m_large.window_s == 600)
    profile = m_large.profile()
    assert profile.mean_rps == pytest.approx(195.84, abs=0.01)
    assert profile.peak_rps == pytest.approx(582.99, abs=0.01)


def test_servegen_m_small_gaps_have_no_lengths_and_no_rate() -> None:
    curves = load_servegen_curves(bundled_trace("servegen-m-small"))
    missing = np.isnan(curves.mean_input_tokens)
    assert missing.sum() == 37
    assert np.all(curves.rate_rps[missing] == 0)


@pytest.mark.parametrize(
    ("params", "mean", "peak"),
    [
        (ServeGenParams(target_mean_rps=8.0), 8.0, None),
        (ServeGenParams(target_peak_rps=12.0), None, 12.0),
        (ServeGenParams(scale=0.02), 0.02 * 279.2967, 0.02 * 582.9917),
    ],
)
def test_servegen_rate_targets(
    m_large: ServeGenCurves, params: ServeGenParams, mean: float | None, peak: float | None
) -> None:
    trace = generate_servegen_trace(m_large, params)
    got_mean = float(trace.meta["mean_rps"])
    got_peak = float(trace.meta["peak_rps"])
    if mean is not None:
        assert got_mean == pytest.approx(mean, rel=1e-4)
        expected = mean * 3600
        assert abs(len(trace.requests) - expected) < 4 * math.sqrt(expected)
    if peak is not None:
        assert got_peak == pytest.approx(peak, rel=1e-4)


def test_servegen_time_compression_and_selection(m_large: ServeGenCurves) -> None:
    # Day 2, 06:00–12:00, compressed 12× → 30 min, each 600 s window lasts 50 s.
    params = ServeGenParams(
        start_s=86_400 + 6 * 3600, duration_s=6 * 3600, time_compression=12.0, scale=0.05
    )
    trace = generate_servegen_trace(m_large, params)
    arrivals = _arrivals(trace)
    assert arrivals.max() < 1800
    first = int((86_400 + 6 * 3600) / 600)
    rates = m_large.rate_rps[first : first + 36] * 0.05
    expected = float(np.sum(rates * 50))
    assert abs(arrivals.size - expected) < 4 * math.sqrt(expected)
    # per-window counts follow the curve: compare the busiest and quietest 6 windows
    counts = np.histogram(arrivals, bins=np.arange(0, 1801, 50))[0]
    order = np.argsort(rates)
    assert counts[order[-6:]].sum() > counts[order[:6]].sum()


def test_servegen_lengths_follow_window_means(m_large: ServeGenCurves) -> None:
    params = ServeGenParams(duration_s=86_400, target_mean_rps=10.0)
    trace = generate_servegen_trace(m_large, params)
    day = slice(0, 144)
    weights = m_large.rate_rps[day]
    expected_in = np.average(m_large.mean_input_tokens[day], weights=weights)
    expected_out = np.average(m_large.mean_output_tokens[day], weights=weights)
    mean_in = np.mean([r.input_tokens for r in trace.requests])
    mean_out = np.mean([r.output_tokens for r in trace.requests])
    # ≈ 36,000 lognormal draws (CV ≈ 1): relative standard error ≈ 0.5 %; allow 3 %
    assert mean_in == pytest.approx(expected_in, rel=0.03)
    assert mean_out == pytest.approx(expected_out, rel=0.03)


def test_servegen_gamma_arrivals_keep_cv(m_large: ServeGenCurves) -> None:
    # A flat stretch (one 600 s window, uncompressed) at 30 rps with CV 2.
    params = ServeGenParams(
        start_s=0, duration_s=600, time_compression=1.0, target_mean_rps=30.0, cv=2.0
    )
    arrivals = _arrivals(generate_servegen_trace(m_large, params))
    rel_err = math.sqrt((3 + 6 * 4 - 1) / (4 * arrivals.size))
    assert _gap_cv(arrivals) == pytest.approx(2.0, rel=4 * rel_err)


def test_servegen_params_are_checked(m_large: ServeGenCurves) -> None:
    with pytest.raises(ValueError, match="at most one"):
        ServeGenParams(scale=1.0, target_mean_rps=3.0)
    with pytest.raises(ValueError, match="time_compression"):
        ServeGenParams(time_compression=0)
    with pytest.raises(ValueError, match="outside the curve"):
        generate_servegen_trace(m_large, ServeGenParams(start_s=20 * 86_400))
