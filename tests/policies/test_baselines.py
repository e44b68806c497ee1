"""The baselines' decision functions against their published rules, table by table."""

from __future__ import annotations

import math

import pytest

from policies.baselines.dynamo import (
    DecodeProfile,
    DecodeRow,
    DynamoConfig,
    DynamoState,
    IntervalMetrics,
    PrefillProfile,
    plan,
    plan_aggregated,
)
from policies.baselines.hpa import (
    HPAConfig,
    HPAReason,
    HPAState,
    PodMetric,
    ScalingPolicy,
    ScalingRules,
    external_average_value_replicas,
    hpa_reconcile,
    pods_metric_replicas,
)
from policies.baselines.keda import KedaConfig, KedaReason, KedaState, keda_step
from policies.baselines.oracle import OracleVariant, cheapest_cover, oracle_floor
from policies.baselines.wva import (
    ReplicaMetrics,
    SaturationConfig,
    VariantState,
    analyze,
    saturation_targets,
    scale_to_zero_target,
)


# ---------------------------------------------------------------------------- HPA
def ready(*values: float) -> list[PodMetric]:
    return [PodMetric(f"p{i}", "running", v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("current", "pods", "expected"),
    [
        (3, ready(0.85, 0.85, 0.85), 3),  # ratio 1.0625: inside ±10 %
        (3, ready(0.88, 0.88, 0.88), 3),  # ratio 1.1: the tolerance's edge still holds
        (3, ready(0.95, 0.90, 0.85), 4),  # ratio 1.125 → ceil(3.375)
        (3, ready(0.2, 0.2, 0.2), 1),  # ratio 0.25 → ceil(0.75)
        (3, ready(0.0, 0.0, 0.0), 0),  # nothing used: 0 (min replicas applies later)
        # a running pod without metrics (loading): 0 on a scale-up flips the direction → stay
        (4, [*ready(0.95, 0.90, 0.85), PodMetric("l", "running", None)], 4),
        # ... counts as the target on a scale-down: (0.4 + 0.8) / (3 · 0.8) = 0.5 → 2
        (3, [*ready(0.2, 0.2), PodMetric("l", "running", None)], 2),
        # pending and terminating pods are ignored: 2 pods at 1.0 → ratio 1.25 → 3
        (
            4,
            [*ready(1.0, 1.0), PodMetric("a", "pending", None), PodMetric("b", "terminating", 0)],
            3,
        ),
    ],
)
def test_pods_metric_replicas(current: int, pods: list[PodMetric], expected: int) -> None:
    assert pods_metric_replicas(current, pods, 0.8) == expected


def test_pods_metric_without_any_sample_is_no_decision() -> None:
    assert pods_metric_replicas(2, [PodMetric("l", "running", None)], 0.8) is None
    assert pods_metric_replicas(2, [], 0.8) is None


@pytest.mark.parametrize(
    ("replicas", "total", "expected"),
    [(4, 23.0, 5), (4, 21.0, 4), (4, 17.0, 4), (4, 0.0, 0), (0, 7.0, 2), (1, 5.4, 1)],
)
def test_external_average_value(replicas: int, total: float, expected: int) -> None:
    assert external_average_value_replicas(replicas, total, 5.0) == expected


def test_scale_up_rate_limit_per_period() -> None:
    cfg = HPAConfig(min_replicas=1, max_replicas=100)
    n, reason, st = hpa_reconcile(3, 20, cfg, HPAState(), 0.0)
    assert (n, reason) == (7, HPAReason.ScaleUpLimit)  # max(3 + 4, 3 · 2)
    n, reason, st = hpa_reconcile(7, 20, cfg, st, 5.0)
    assert (n, reason) == (7, HPAReason.ScaleUpLimit)  # same 15 s period: start was 3
    n, _, st = hpa_reconcile(7, 20, cfg, st, 15.0)
    assert n == 14  # new period: max(7 + 4, 7 · 2)
    n, reason, _ = hpa_reconcile(14, 20, cfg, st, 30.0)
    assert (n, reason) == (20, HPAReason.DesiredWithinRange)


def test_scale_up_capped_by_max_replicas() -> None:
    n, reason, _ = hpa_reconcile(8, 20, HPAConfig(max_replicas=10), HPAState(), 0.0)
    assert (n, reason) == (10, HPAReason.TooManyReplicas)


def test_scale_down_stabilization_keeps_the_highest_recommendation() -> None:
    cfg = HPAConfig(min_replicas=1, max_replicas=10)
    st = HPAState()
    steps = [(0.0, 6, 6), (60.0, 4, 6), (120.0, 3, 6), (301.0, 3, 4), (421.0, 3, 3)]
    current = 6
    for now, desired, expected in steps:
        current, reason, st = hpa_reconcile(current, desired, cfg, st, now)
        assert current == expected, now
        if expected > desired:
            assert reason == HPAReason.ScaleDownStabilized


def test_scale_down_to_min_and_custom_pods_policy() -> None:
    no_window = ScalingRules(0.0, (ScalingPolicy("Percent", 100, 15.0),))
    cfg = HPAConfig(min_replicas=1, max_replicas=10, scale_down=no_window)
    n, reason, _ = hpa_reconcile(5, 0, cfg, HPAState(), 0.0)
    assert (n, reason) == (1, HPAReason.TooFewReplicas)
    one_a_minute = ScalingRules(0.0, (ScalingPolicy("Pods", 1, 60.0),))
    cfg = HPAConfig(min_replicas=1, max_replicas=10, scale_down=one_a_minute)
    n, reason, st = hpa_reconcile(5, 2, cfg, HPAState(), 0.0)
    assert (n, reason) == (4, HPAReason.ScaleDownLimit)
    n, _, st = hpa_reconcile(4, 2, cfg, st, 30.0)
    assert n == 4  # still inside the minute of the last removal
    n, _, _ = hpa_reconcile(4, 2, cfg, st, 61.0)
    assert n == 3


@pytest.mark.parametrize(
    ("current", "desired", "expected", "reason"),
    [
        (0, 5, 0, HPAReason.ScalingDisabled),  # HPA leaves zero alone
        (1, 5, 2, HPAReason.BelowMinReplicas),
        (12, 5, 10, HPAReason.AboveMaxReplicas),
        (3, None, 3, HPAReason.FailedGetMetrics),
        (3, 3, 3, HPAReason.DesiredWithinRange),
    ],
)
def test_hpa_guards(current: int, desired: int | None, expected: int, reason: HPAReason) -> None:
    cfg = HPAConfig(min_replicas=2, max_replicas=10)
    assert hpa_reconcile(current, desired, cfg, HPAState(), 0.0)[:2] == (expected, reason)


# ---------------------------------------------------------------------------- KEDA
KEDA = KedaConfig(threshold=5.0, min_replica_count=0, max_replica_count=10)


@pytest.mark.parametrize(
    ("value", "current", "state", "now", "expected", "reason"),
    [
        (3.0, 0, KedaState(), 0.0, 1, KedaReason.Activated),  # 0 → 1 on activation
        (0.0, 0, KedaState(), 0.0, 0, KedaReason.HPA),  # inactive at zero: stays
        (9.0, 0, KedaState(next_poll_t=30.0), 15.0, 0, KedaReason.HPA),  # waits for the poll
        (0.0, 1, KedaState(last_active_t=0.0), 299.0, 1, KedaReason.HPA),  # cooling down
        (0.0, 1, KedaState(last_active_t=0.0), 300.0, 0, KedaReason.Deactivated),
        (0.0, 3, KedaState(last_active_t=0.0), 300.0, 0, KedaReason.Deactivated),
        (None, 1, KedaState(), 0.0, 0, KedaReason.Deactivated),  # no result reads as 0
        (23.0, 4, KedaState(last_active_t=0.0), 0.0, 5, KedaReason.HPA),  # ceil(23 / 5)
        (21.0, 4, KedaState(last_active_t=0.0), 0.0, 4, KedaReason.HPA),  # within tolerance
    ],
)
def test_keda_step(
    value: float | None,
    current: int,
    state: KedaState,
    now: float,
    expected: int,
    reason: KedaReason,
) -> None:
    n, why, _hpa, _ = keda_step(value, current, KEDA, state, now)
    assert (n, why) == (expected, reason)


def test_keda_min_replica_count_one_never_deactivates() -> None:
    cfg = KedaConfig(min_replica_count=1, max_replica_count=10)
    n, reason, hpa_reason, _ = keda_step(0.0, 1, cfg, KedaState(last_active_t=0.0), 900.0)
    assert (n, reason, hpa_reason) == (1, KedaReason.HPA, HPAReason.TooFewReplicas)


def test_keda_scale_in_above_one_goes_through_the_hpa_window() -> None:
    state = KedaState(last_active_t=0.0)
    n, _, _, state = keda_step(20.0, 4, KEDA, state, 0.0)  # 20 waiting / 5 = 4: steady
    assert n == 4
    n, _, hpa_reason, state = keda_step(2.0, 4, KEDA, state, 30.0)  # still active, HPA wants 1
    assert (n, hpa_reason) == (4, HPAReason.ScaleDownStabilized)
    n, _, _, state = keda_step(2.0, 4, KEDA, state, 299.0)
    assert n == 4
    n, _, _, _ = keda_step(2.0, 4, KEDA, state, 301.0)  # the 4 left the 300 s window
    assert n == 1


# ---------------------------------------------------------------------------- WVA
SAT = SaturationConfig()


def rm(variant: str, kv: float, queue: float, i: int = 0) -> ReplicaMetrics:
    return ReplicaMetrics(f"{variant}-{i}-{kv}-{queue}", variant, kv, queue)


@pytest.mark.parametrize(
    ("replicas", "up", "down_safe"),
    [
        ([rm("a", 0.72, 1), rm("a", 0.70, 2)], True, False),  # spare kv 0.09 < 0.10
        ([rm("a", 0.30, 2), rm("a", 0.30, 3)], True, False),  # spare queue 2.5 < 3
        ([rm("a", 0.85, 0), rm("a", 0.10, 6)], True, False),  # both saturated: none spare
        ([rm("a", 0.20, 0), rm("a", 0.25, 0), rm("a", 0.15, 0)], False, True),
        ([rm("a", 0.40, 0), rm("a", 0.40, 0)], False, False),  # 0.8 on one: spare 0 < 0.10
        ([rm("a", 0.10, 0)], False, False),  # one replica is never safe to remove
        ([rm("a", 0.10, 0), rm("a", 0.10, 0), rm("a", 0.95, 9)], False, True),
    ],
)
def test_saturation_analysis(replicas: list[ReplicaMetrics], up: bool, down_safe: bool) -> None:
    a = analyze(replicas, SAT)
    assert (a.scale_up, a.scale_down_safe) == (up, down_safe)


def variants(**kw: tuple[float, int, int, int]) -> list[VariantState]:
    return [VariantState(n, c, cur, des, pen) for n, (c, cur, des, pen) in kw.items()]


def test_wva_scales_up_the_cheapest_variant_without_pending_pods() -> None:
    hot = analyze([rm("h100", 0.79, 4), rm("mi300x", 0.79, 4, 1)], SAT)
    vs = variants(h100=(16.7, 1, 0, 0), mi300x=(8.0, 1, 0, 0))
    assert saturation_targets(hot, vs) == {"h100": 1, "mi300x": 2}
    vs = variants(h100=(16.7, 1, 0, 0), mi300x=(8.0, 2, 0, 1))  # mi300x has a pending pod
    assert saturation_targets(hot, vs) == {"h100": 2, "mi300x": 2}


def test_wva_scales_down_the_most_expensive_variant_not_below_one() -> None:
    cold = analyze([rm("h100", 0.1, 0), rm("mi300x", 0.1, 0, 1), rm("mi300x", 0.1, 0, 2)], SAT)
    vs = variants(h100=(16.7, 1, 0, 0), mi300x=(8.0, 2, 0, 0))
    assert saturation_targets(cold, vs) == {"h100": 1, "mi300x": 1}  # h100 is at 1 already
    vs = variants(a=(5.0, 2, 0, 0), b=(5.0, 2, 0, 0))
    ties = analyze([rm(v, 0.1, 0, i) for v in "ab" for i in range(2)], SAT)
    assert saturation_targets(ties, vs) == {"a": 2, "b": 1}  # equal cost: alphabetically last


def test_wva_preserves_a_desired_in_flight_and_starts_from_ready() -> None:
    hot = analyze([rm("a", 0.79, 4), rm("b", 0.79, 4)], SAT)
    # a: desired 3 ≠ current 2 → kept at 3 and skipped; b gets the +1
    vs = variants(a=(1.0, 2, 3, 0), b=(2.0, 1, 0, 0))
    assert saturation_targets(hot, vs) == {"a": 3, "b": 2}
    # stable, but only 1 of 2 pods reports: the target starts from current, not ready
    vs = variants(a=(1.0, 2, 2, 1), b=(2.0, 1, 0, 0))
    assert saturation_targets(hot, vs) == {"a": 2, "b": 2}


def test_wva_leaves_variants_without_metrics_alone() -> None:
    a = analyze([rm("a", 0.79, 4)], SAT)
    assert saturation_targets(a, variants(a=(1.0, 1, 0, 0), b=(0.5, 3, 0, 3))) == {"a": 2, "b": 3}
    assert saturation_targets(analyze([], SAT), variants(a=(1.0, 2, 0, 0))) == {"a": 2}


@pytest.mark.parametrize(
    ("target", "current", "successes", "queued", "expected"),
    [
        (1, 1, 0, 0, 0),  # a retention period without a success → zero
        (1, 1, None, 0, 1),  # not observed long enough
        (2, 2, 5, 0, 2),
        (1, 1, 0, 3, 1),  # queued requests keep it up
        (0, 0, 0, 2, 1),  # wake from zero on queued demand
        (0, 0, 0, 0, 0),
    ],
)
def test_wva_scale_to_zero(
    target: int, current: int, successes: int | None, queued: int, expected: int
) -> None:
    assert scale_to_zero_target(target, current, successes, queued) == expected


# ---------------------------------------------------------------------------- Dynamo
PREFILL = PrefillProfile((1000.0, 2000.0), (0.1, 0.2), (10_000.0, 10_000.0))
ROW = ((1.0, 10.0, 100.0), (0.01, 0.02, 0.05), (100.0, 500.0, 2000.0))
DECODE = DecodeProfile((DecodeRow(1000.0, *ROW), DecodeRow(2000.0, *ROW)))
DYN = DynamoConfig(ttft_s=1.0, itl_s=0.05, interval_s=180.0)


def interval(ttft: float = 0.1, itl: float = 0.025, num_req: float = 3600) -> IntervalMetrics:
    return IntervalMetrics(num_req, 1000.0, 250.0, ttft, itl, request_duration_s=2.5)


def test_dynamo_profile_interpolation() -> None:
    assert PREFILL.ttft(1500) == pytest.approx(0.15)
    assert PREFILL.ttft(50) == 0.1  # clamped
    assert DECODE.itl(55.0, 1500.0) == pytest.approx(0.035)
    assert DECODE.best_throughput_per_gpu(0.05, 1125.0) == pytest.approx(2000.0)
    assert DECODE.best_throughput_per_gpu(0.025, 1125.0) == pytest.approx(750.0)
    assert DECODE.best_throughput_per_gpu(0.005, 1125.0) == 100.0  # nothing meets it


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        # 3600 · 1000 / 180 = 20,000 prompt tokens/s over 10,000 per GPU → 2; 5,000 output
        # tokens/s over 2,000 (ITL 50 ms at cf_d = 1: observed 25 ms = profiled at 25 per
        # engine) → ceil(2.5) = 3
        (interval(), (2, 3, 1.0, 1.0)),
        # ITL twice the profile's → objective 25 ms → 750 tokens/s/GPU → ceil(6.67) = 7
        (interval(itl=0.05), (2, 7, 1.0, 2.0)),
        # TTFT half the profile's: prefill need × 0.5 → 1; three times: capped at 1 → 2
        (interval(ttft=0.05), (1, 3, 0.5, 1.0)),
        (interval(ttft=0.3), (2, 3, 3.0, 1.0)),
        # 36 requests: min_endpoint; concurrency 0.25 reads the profile's 1-request ITL (10 ms)
        (interval(num_req=36), (1, 1, 1.0, 2.5)),
    ],
)
def test_dynamo_plan(metrics: IntervalMetrics, expected: tuple[int, int, float, float]) -> None:
    out, state = plan(metrics, 2, PREFILL, DECODE, DYN, DynamoState())
    assert out is not None
    assert (out.prefill, out.decode) == expected[:2]
    assert (out.p_correction, out.d_correction) == pytest.approx(expected[2:])
    assert state.last == metrics


def test_dynamo_skips_empty_intervals_and_shrinks_to_a_budget() -> None:
    assert plan(None, 2, PREFILL, DECODE, DYN, DynamoState())[0] is None
    nan = IntervalMetrics(10, 1000, 250, math.nan, 0.02, 2.0)
    assert plan(nan, 2, PREFILL, DECODE, DYN, DynamoState())[0] is None
    capped = DynamoConfig(ttft_s=1.0, itl_s=0.05, max_gpu_budget=4)
    out, _ = plan(interval(), 2, PREFILL, DECODE, capped, DynamoState())
    assert out is not None
    assert (out.prefill, out.decode) == (2, 2)  # 5 GPUs → × 0.8: round(1.6) = 2, then 4 − 2


def test_dynamo_aggregated_adds_prefill_and_decode_time() -> None:
    n, _ = plan_aggregated(interval(), 2, PREFILL, DECODE, DYN, DynamoState())
    assert n == 5  # ceil(2.0 + 2.5)
    assert plan_aggregated(None, 2, PREFILL, DECODE, DYN, DynamoState())[0] is None


# ---------------------------------------------------------------------------- oracle
def test_oracle_worked_example() -> None:
    v = OracleVariant("a", "h100", 4, 4.0, capacity_rps=4.0, min_replicas=1)
    floor = oracle_floor([300, 900, 120, 0], 60.0, [v])
    assert floor.replicas["a"] == (2, 4, 1, 1)  # min 1 at no demand
    assert floor.gpu_hours == pytest.approx(8 * 4 * 60 / 3600)
    assert floor.cost == pytest.approx(floor.gpu_hours * 4.0)
    assert floor.unmet_windows == 0


def test_oracle_cheapest_cover_fills_the_limited_variant_first() -> None:
    h100 = OracleVariant("h100", "h100", 4, 4.18, 4.0, 0, 10)
    mi300x = OracleVariant("mi300x", "mi300x", 1, 1.99, 3.0, 0, 10)
    cover, met = cheapest_cover(10.0, [h100, mi300x], {"mi300x": 2})
    assert met
    assert cover == {"h100": 1, "mi300x": 2}
    cover, met = cheapest_cover(10.0, [h100, mi300x], {"mi300x": 8}, "cost")
    assert (cover, met) == ({"h100": 0, "mi300x": 4}, True)


def test_oracle_counts_windows_beyond_the_limits() -> None:
    v = OracleVariant("a", "h100", 1, 1.0, 1.0, 0, 3)
    floor = oracle_floor([60, 600], 60.0, [v])
    assert floor.replicas["a"] == (1, 3)
    assert floor.unmet_windows == 1
