"""The Pools dashboard: what size does each pool have, what size does the controller want, and why?

Why it exists: when a pool is too small or too large, the operator needs the controller's side
of the story next to the cluster's — desired against current and ready replicas, the reason of
every decision (a stable ``Reason``, the same value the CRD conditions and the decision log
carry), how often it changed its mind, how long new replicas take to start, demand against the
capacity the pools have — and, in the last row, whether the controller itself is healthy.
"""

from __future__ import annotations

from dashboards import variables as v
from dashboards.panels import (
    Query,
    Step,
    dashboard,
    row,
    single_stat,
    state_timeline,
    table_panel,
    time_series,
)
from dashboards.sdk import builder

UID = "sloscaler-pools"


def build() -> builder.Dashboard:
    board = dashboard(
        UID,
        "sloscaler / Pools",
        "Per pool: desired against current and ready replicas with the reason of each "
        "decision, scale events, start-up, demand against capacity; and the controller's health.",
        [v.datasource(), v.namespace(), v.policy(), v.pool()],
    )
    board = board.with_row(row("Replicas and decisions"))
    board = board.with_panel(
        time_series(
            "Desired, current and ready replicas",
            "Desired: what the controller wants after normalization. Current: spec.replicas of "
            "the pool's workload. Ready: its Ready pods. Recommended: the recommendation before "
            "stabilization, rate limits, bounds, GPU budget and scale-to-zero rules.",
            "short",
            [
                Query(f"sloscaler_desired_replicas{{{v.POOL}}}", "{{pool}} desired"),
                Query(f"sloscaler_current_replicas{{{v.POOL}}}", "{{pool}} current"),
                Query(f"sloscaler_ready_replicas{{{v.POOL}}}", "{{pool}} ready"),
                Query(f"sloscaler_recommended_replicas{{{v.POOL}}}", "{{pool}} recommended"),
            ],
            width=16,
            min_value=0,
            steps=True,
        )
    ).with_panel(
        table_panel(
            "Reason now",
            "The reason of each pool's latest decision (sloscaler_decision_reason == 1).",
            [Query(f"sloscaler_decision_reason{{{v.POOL}}} == 1")],
            width=8,
        )
    )
    board = board.with_panel(
        state_timeline(
            "Decision reason over time",
            "One row per pool and reason, filled while that reason decided the pool's size. "
            "Reasons are documented in docs/metrics.md (DemandForecast, ScaleDownStabilized, "
            "TooManyReplicas, GPUBudget, ScaleToZero, WakeUp, …).",
            [Query(f"sloscaler_decision_reason{{{v.POOL}}} == 1", "{{pool}}: {{reason}}")],
            mappings={"1": ("active", "blue")},
        )
    )
    board = board.with_panel(
        time_series(
            "Gap to desired and pods starting",
            "Desired − current (sloscaler:replicas_gap: the workload has not been resized yet) "
            "and current − ready (sloscaler:replicas_not_ready: pods still starting).",
            "short",
            [
                Query(f"sloscaler:replicas_gap{{{v.POOL}}}", "{{pool}} desired − current"),
                Query(f"sloscaler:replicas_not_ready{{{v.POOL}}}", "{{pool}} not ready"),
            ],
            steps=True,
        )
    ).with_panel(
        time_series(
            "Demand and capacity",
            "Upper forecast of each policy's demand over the start-up horizon, against what "
            "its ready replicas serve within the SLO (capacity per replica × ready replicas).",
            "reqps",
            [
                Query(f"max by (policy) (sloscaler_demand_rps{{{v.POLICY}}})", "{{policy}} demand"),
                Query(
                    f"sum by (policy) ((sloscaler_capacity_rps{{{v.POOL}}}"
                    f" * sloscaler_ready_replicas{{{v.POOL}}}) > 0)",
                    "{{policy}} capacity of ready replicas",
                ),
            ],
            min_value=0,
        )
    )
    board = board.with_row(row("Scaling and start-up"))
    board = (
        board.with_panel(
            time_series(
                "Scale events",
                "Changes of the desired replicas, up and down, per pool.",
                "short",
                [
                    Query(
                        "sum by (pool, direction) (increase(sloscaler_scale_events_total"
                        f"{{{v.POOL}}}[$__rate_interval]))",
                        "{{pool}} {{direction}}",
                    )
                ],
                width=10,
                min_value=0,
                bars=True,
            )
        )
        .with_panel(
            single_stat(
                "Scale events in range",
                "Changes of the desired replicas over the dashboard's time range.",
                "short",
                [
                    Query(
                        "sum by (pool) (round(increase(sloscaler_scale_events_total"
                        f"{{{v.POOL}}}[$__range])))",
                        "{{pool}}",
                    )
                ],
                width=7,
                height=8,
            )
        )
        .with_panel(
            single_stat(
                "Planned start-up time",
                "Time a new replica needs to become ready (spec.pools[].startupSeconds): the "
                "horizon the demand forecast looks ahead.",
                "s",
                [Query(f"sloscaler_startup_seconds{{{v.POOL}}}", "{{pool}}")],
                width=7,
                height=8,
            )
        )
    )
    board = board.with_panel(
        time_series(
            "Predicted p90 over the objective",
            "Predicted p90 TTFT and TPOT at the desired size ÷ the objective: above 1 the pool "
            "is expected to miss its SLO (a bound such as maxReplicas or the GPU budget holds it; "
            "the SloscalerPredictedOverSLO alert fires after 15 min).",
            "none",
            [
                Query(f"sloscaler:ttft_prediction_over_slo:ratio{{{v.POOL}}}", "{{pool}} TTFT"),
                Query(f"sloscaler:tpot_prediction_over_slo:ratio{{{v.POOL}}}", "{{pool}} TPOT"),
            ],
            width=24,
            min_value=0,
            lines=(Step(1, "red"),),
        )
    )
    board = board.with_row(row("Controller"))
    return (
        board.with_panel(
            single_stat(
                "Leader replicas",
                "Controller replicas holding the leader Lease: exactly 1, or no pool is scaled.",
                "short",
                [Query("sum(sloscaler_leader)", "leaders")],
                thresholds=(Step(None, "red"), Step(1, "green"), Step(2, "red")),
            )
        )
        .with_panel(
            single_stat(
                "SLOPolicies",
                "SLOPolicies the last tick listed (valid or not).",
                "short",
                [Query("max(sloscaler_policies)", "policies")],
            )
        )
        .with_panel(
            time_series(
                "Tick duration, p99",
                "p99 duration of one reconciliation of every SLOPolicy over 5 min; the "
                "SloscalerTickSlow alert fires above 10 s (the tick interval is 15 s).",
                "s",
                [Query("sloscaler:tick_duration_seconds:p99_5m", "p99")],
                width=6,
                min_value=0,
                lines=(Step(10, "red"),),
            )
        )
        .with_panel(
            time_series(
                "Errors",
                "Controller errors per second by kind over 5 min (docs/metrics.md explains each "
                "kind; metrics errors make pools hold their size).",
                "short",
                [Query("sloscaler:errors:rate5m", "{{kind}}")],
                width=6,
                min_value=0,
            )
        )
    )
