"""The Cost dashboard: what do the selected SLOPolicies spend, and what would a static one cost?

Why it exists: the controller's claim is the same SLO for fewer GPU-hours. This dashboard shows
GPUs held and their cost per hour now, GPU-hours and cost over the dashboard's range per model
and per accelerator, the cost of each million generated tokens, and the same spend under a
static deployment.

The static baseline is each pool held at its own peak over the range for the whole range —
what a fixed deployment sized for the observed peak would have cost. Costs are in the currency
of the SLOPolicies' ``costPerGpuHour``. Over a range of length R (``$__range``), GPU-hours are
``avg_over_time(sloscaler_pool_gpus[R]) × R / 1 h``: a pool averaging 2.5 GPUs over 6 h used
15 GPU-hours; at a peak of 4 GPUs the static baseline is 24.
"""

from __future__ import annotations

from dashboards import variables as v
from dashboards.panels import Query, Step, bar_gauge, dashboard, row, single_stat, time_series
from dashboards.sdk import builder

UID = "sloscaler-cost"
GPUS = f"sloscaler_pool_gpus{{{v.ACCELERATOR}}}"
COST = f"sloscaler_pool_cost_per_hour{{{v.ACCELERATOR}}}"
HOURS = "$__range_s / 3600"
PER_HOUR = "suffix:/h"
GPU_HOURS = "suffix: GPU-h"
BY_MODEL = f"on (namespace, policy) group_left (model) sloscaler_policy_info{{{v.POLICY}}}"


def _over_range(series: str, by: str, how: str) -> str:
    """``series`` summed ``by`` a label over the range: ``how`` is avg (actual) or max (peak)."""
    inner = f"{how}_over_time({series}[$__range])"
    if by == "model":
        return f"sum by (model) ({inner} * {BY_MODEL}) * {HOURS}"
    return f"sum by ({by}) ({inner}) * {HOURS}"


def _actual_and_peak(series: str, by: str) -> list[Query]:
    return [
        Query(_over_range(series, by, "avg"), f"{{{{{by}}}}}"),
        Query(_over_range(series, by, "max"), f"{{{{{by}}}}} static peak"),
    ]


def build() -> builder.Dashboard:
    board = dashboard(
        UID,
        "sloscaler / Cost",
        "GPUs and cost per model and accelerator, against a static deployment sized for the "
        "peak of the range.",
        [v.datasource(), v.namespace(), v.policy(), v.accelerator(), v.model()],
    )
    board = board.with_row(row("Spend"))
    board = (
        board.with_panel(
            single_stat(
                "Cost per hour now",
                "GPUs held by the pools' current replicas × costPerGpuHour.",
                PER_HOUR,
                [Query(f"sum({COST})", "cost per hour")],
                decimals=2,
            )
        )
        .with_panel(
            single_stat(
                "GPUs held now",
                "GPUs of the pools' current replicas (replicas × gpusPerReplica).",
                "short",
                [Query(f"sum({GPUS})", "GPUs")],
            )
        )
        .with_panel(
            single_stat(
                "Cost over the range",
                "What the pools cost over the dashboard's time range.",
                "short",
                [Query(f"sum(avg_over_time({COST}[$__range])) * {HOURS}", "cost")],
                decimals=2,
            )
        )
        .with_panel(
            single_stat(
                "Saved against a static peak deployment",
                "1 − actual cost ÷ the cost of holding every pool at its peak for the whole range.",
                "percentunit",
                [
                    Query(
                        f"1 - sum(avg_over_time({COST}[$__range]))"
                        f" / sum(max_over_time({COST}[$__range]))",
                        "saved",
                    )
                ],
                thresholds=(Step(None, "orange"), Step(0.1, "green")),
                decimals=1,
            )
        )
    )
    board = board.with_row(row("Over the range, per model and accelerator"))
    board = (
        board.with_panel(
            bar_gauge(
                "GPU-hours per model",
                "GPU-hours used, and what a static deployment at each pool's peak would use.",
                GPU_HOURS,
                _actual_and_peak(GPUS, "model"),
            )
        )
        .with_panel(
            bar_gauge(
                "Cost per model",
                "Cost over the range, and that of a static deployment at each pool's peak.",
                "short",
                _actual_and_peak(COST, "model"),
            )
        )
        .with_panel(
            bar_gauge(
                "GPU-hours per accelerator",
                "GPU-hours used per accelerator type, and at a static peak.",
                GPU_HOURS,
                _actual_and_peak(GPUS, "accelerator"),
            )
        )
        .with_panel(
            bar_gauge(
                "Cost per accelerator",
                "Cost per accelerator type, and at a static peak.",
                "short",
                _actual_and_peak(COST, "accelerator"),
            )
        )
    )
    tokens = 'rate(vllm:generation_tokens_total{namespace="$namespace"}[$__rate_interval])'
    board = board.with_row(row("Over time"))
    return (
        board.with_panel(
            time_series(
                "GPUs held per accelerator",
                "GPUs of the pools' current replicas, stacked by accelerator type.",
                "short",
                [Query(f"sum by (accelerator) ({GPUS})", "{{accelerator}}")],
                width=8,
                min_value=0,
                stack=True,
                steps=True,
            )
        )
        .with_panel(
            time_series(
                "Cost per hour against a static peak deployment",
                "Cost per hour of each pool and in total; the flat line holds every pool at its "
                "peak of the whole range (evaluated at its end).",
                PER_HOUR,
                [
                    Query(f"sum by (pool) ({COST})", "{{pool}}"),
                    Query(f"sum({COST})", "total"),
                    Query(
                        f"sum(max_over_time({COST}[$__range] @ end()))",
                        "static peak deployment",
                    ),
                ],
                width=8,
                min_value=0,
                steps=True,
            )
        )
        .with_panel(
            time_series(
                "Cost per million generated tokens",
                "Cost per hour of each policy's pools ÷ the tokens their pods generate (vLLM's "
                "generation_tokens counter).",
                "short",
                [
                    Query(
                        f"sum by (policy) ({COST}) / 3600 / sum by (policy) "
                        f"({v.with_pool_labels(tokens, labels='policy')}) * 1e6",
                        "{{policy}}",
                    )
                ],
                width=8,
                min_value=0,
            )
        )
    )
