"""Histogram semantics: Prometheus ``le`` buckets, the O(buckets) arithmetic observation, and the
PromQL-equivalent snapshot arithmetic (increase over a window, ``histogram_quantile``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simulator.metrics import ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS, Histogram
from simulator.metrics.histogram import HistogramSnapshot

Stretch = tuple[tuple[float, ...], float, float, int, int]


def naive_arithmetic(
    bounds: tuple[float, ...], first: float, step: float, k: int, weight: int
) -> Histogram:
    h = Histogram(bounds)
    for j in range(k):
        h.observe(first + j * step, weight)
    return h


@pytest.mark.parametrize(
    ("value", "bucket"),
    [
        (0.0, 0),  # below the first edge
        (0.01, 0),  # equal to the first edge: le means <=
        (0.0100001, 1),
        (0.025, 1),
        (80.0, len(ITL_BUCKETS) - 1),  # the last finite edge
        (80.0001, len(ITL_BUCKETS)),  # +Inf
        (math.inf, len(ITL_BUCKETS)),
    ],
)
def test_observe_counts_a_value_equal_to_an_edge_in_that_edges_bucket(
    value: float, bucket: int
) -> None:
    h = Histogram(ITL_BUCKETS)
    h.observe(value)
    assert h.counts[bucket] == 1
    assert h.count == 1


def test_buckets_are_cumulative_and_end_with_inf_equal_to_count() -> None:
    h = Histogram((1.0, 2.0, 5.0))
    for v in (0.5, 1.0, 1.5, 3.0, 9.0, 9.0):
        h.observe(v)
    h.observe(2.0, count=3)
    assert h.buckets() == [(1.0, 2), (2.0, 6), (5.0, 7), (math.inf, 9)]
    assert h.count == 9
    assert h.sum == pytest.approx(0.5 + 1 + 1.5 + 3 + 18 + 6)


def test_observe_many_matches_single_observations_for_lists_and_arrays() -> None:
    values = [0.0, 0.001, 0.0015, 0.25, 0.25, 3.0, 10_000.0]
    one, many, arr = Histogram(TTFT_BUCKETS), Histogram(TTFT_BUCKETS), Histogram(TTFT_BUCKETS)
    for v in values:
        one.observe(v)
    many.observe_many(values)
    arr.observe_many(np.array(values))
    arr.observe_many(np.array([]))
    assert one.counts == many.counts == arr.counts
    assert one.sum == pytest.approx(arr.sum)


@pytest.mark.parametrize("bounds", [(), (1.0, 1.0), (2.0, 1.0), (1.0, math.inf), (math.nan,)])
def test_invalid_bounds_are_rejected(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="bound"):
        Histogram(bounds)


def test_observe_arithmetic_docstring_example() -> None:
    h = Histogram(ITL_BUCKETS)
    h.observe_arithmetic(0.020, 0.002, 20, weight=8)
    i025, i05, i075 = (ITL_BUCKETS.index(e) for e in (0.025, 0.05, 0.075))
    assert h.counts[i025] == 24
    assert h.counts[i05] == 104
    assert h.counts[i075] == 32
    assert h.count == 160
    assert h.sum == pytest.approx(6.24)
    assert h.counts == naive_arithmetic(ITL_BUCKETS, 0.020, 0.002, 20, 8).counts


def test_observe_arithmetic_follows_floating_point_like_the_naive_loop() -> None:
    # 0.1 + 3*0.1 rounds above 0.4 and 0.0 + 3 * 0.1 rounds above 0.3: the loop puts those values
    # in the next bucket, and so must the closed form.
    bounds = (0.1, 0.2, 0.3, 0.4, 0.5)
    for first, step, k in ((0.0, 0.1, 6), (0.1, 0.1, 5), (0.5, -0.1, 6)):
        h = Histogram(bounds)
        h.observe_arithmetic(first, step, k)
        assert h.counts == naive_arithmetic(bounds, first, step, k, 1).counts


@pytest.mark.parametrize(
    ("first", "step", "k"),
    [
        # (0.2 - 0.1) / 0.05000000000000001 = 1.9999999999999998, yet 0.1 + 2 * step == 0.2:
        # the division alone would miss the value sitting exactly on the le="0.2" edge.
        (0.1, (0.2 - 0.1) / 2, 4),
        (0.2, (0.3 - 0.2) / 7, 10),
        (0.1, (0.2 - 0.1) / 11, 14),
        (0.2, -(0.2 - 0.1) / 2, 4),
    ],
)
def test_observe_arithmetic_where_the_division_misestimates_an_edge(
    first: float, step: float, k: int
) -> None:
    h = Histogram(ITL_BUCKETS)
    h.observe_arithmetic(first, step, k)
    assert h.counts == naive_arithmetic(ITL_BUCKETS, first, step, k, 1).counts


@pytest.mark.parametrize(
    ("first", "step", "k", "weight"),
    [(0.05, 0.0, 10, 3), (0.05, 0.01, 1, 2), (7.0, 0.5, 0, 1), (7.0, 0.5, 4, 0)],
)
def test_observe_arithmetic_degenerate_cases(
    first: float, step: float, k: int, weight: int
) -> None:
    h = Histogram(ITL_BUCKETS)
    h.observe_arithmetic(first, step, k, weight)
    naive = naive_arithmetic(ITL_BUCKETS, first, step, k, weight)
    assert h.counts == naive.counts
    assert h.sum == pytest.approx(naive.sum)


bucket_sets = st.sampled_from(
    [ITL_BUCKETS, TTFT_BUCKETS, REQUEST_LATENCY_BUCKETS, (1.0, 8.0, 16.0)]
)


@st.composite
def arithmetic_stretches(draw: st.DrawFn) -> Stretch:
    """(bounds, first, step, k, weight), often with values landing exactly on bucket edges."""
    bounds = draw(bucket_sets)
    k = draw(st.integers(min_value=1, max_value=300))
    weight = draw(st.integers(min_value=1, max_value=64))
    kind = draw(st.sampled_from(["free", "edge_to_edge", "edge_to_edge", "starts_on_edge"]))
    if kind == "edge_to_edge":
        # first on an edge and a step that makes later values hit other edges exactly
        a, b = sorted(draw(st.lists(st.sampled_from(bounds), min_size=2, max_size=2, unique=True)))
        m = draw(st.integers(min_value=1, max_value=20))
        first, step = (a, (b - a) / m) if draw(st.booleans()) else (b, (a - b) / m)
    elif kind == "starts_on_edge":
        first = draw(st.sampled_from(bounds))
        step = draw(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False))
    else:
        first = draw(st.floats(min_value=0.0, max_value=2 * bounds[-1], allow_nan=False))
        step = draw(st.floats(min_value=-5.0, max_value=5.0, allow_nan=False))
    return bounds, first, step, k, weight


@settings(max_examples=400, deadline=None)
@given(arithmetic_stretches())
def test_observe_arithmetic_equals_the_naive_loop(stretch: Stretch) -> None:
    bounds, first, step, k, weight = stretch
    assume(math.isfinite(first + (k - 1) * step))
    fast = Histogram(bounds)
    fast.observe(0.3)  # pre-existing observations must be kept
    fast.observe_arithmetic(first, step, k, weight)
    naive = naive_arithmetic(bounds, first, step, k, weight)
    naive.observe(0.3)
    assert fast.counts == naive.counts
    scale = k * weight * max(abs(first), abs(first + (k - 1) * step), 1.0)
    assert math.isclose(fast.sum, naive.sum, rel_tol=1e-9, abs_tol=1e-12 * scale)


def snap(
    bounds: tuple[float, ...], counts: tuple[int, ...], total: float = 0.0
) -> HistogramSnapshot:
    return HistogramSnapshot(tuple(bounds), tuple(counts), total)


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        # rank 5 of 10 lands in (1, 2] with 4 below and 4 inside: 1 + 1 * (1/4)
        ((4, 4, 2, 0), 0.5, 1.25),
        ((10, 0, 0, 0), 0.5, 0.5),  # the first bucket starts at 0
        ((0, 0, 0, 10), 0.9, 4.0),  # rank in +Inf: the largest finite bound
        ((0, 0, 0, 0), 0.5, math.nan),  # no observations: no answer, not zero
        ((1, 0, 0, 0), 1.5, math.inf),
        ((1, 0, 0, 0), -0.5, -math.inf),
    ],
)
def test_quantile_matches_promql_histogram_quantile(
    counts: tuple[int, ...], q: float, expected: float
) -> None:
    got = snap((1.0, 2.0, 4.0), counts).quantile(q)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_since_is_the_window_increase_and_treats_a_decrease_as_a_reset() -> None:
    h = Histogram((1.0, 2.0))
    h.observe(0.5)
    older = h.snapshot()
    h.observe(1.5, count=3)
    newer = h.snapshot()
    window = newer.since(older)
    assert window.counts == (0, 3, 0)
    assert window.count == 3
    assert window.sum == pytest.approx(4.5)
    assert window.mean() == pytest.approx(1.5)
    restarted = Histogram((1.0, 2.0)).snapshot()
    assert restarted.since(newer) == restarted
    assert math.isnan(restarted.mean())
    with pytest.raises(ValueError, match="bounds"):
        newer.since(snap((1.0,), (0, 0)))
