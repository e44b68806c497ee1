"""The SLO overview dashboard: are the selected SLOPolicies meeting their objectives?

Why it exists: it is the page an on-call engineer opens first. It answers, per SLOPolicy, how
much of the error budget is left and how fast it burns (the recording rules of
``deploy/base/prometheusrule.yaml``, which the burn-rate alerts use too), whether observed p90
TTFT and TPOT sit under the objective (vLLM's histograms), and how much traffic the gateway shed
to protect the rest.

The SLI panels read the ``sloscaler:slo_*`` recording rules, not raw histograms: the SLI of each
policy needs its objective as a histogram bucket boundary, which only the per-policy rule group
knows. Without the PrometheusRule installed those panels are empty.
"""

from __future__ import annotations

from dashboards import variables as v
from dashboards.panels import Query, Step, dashboard, row, single_stat, time_series
from dashboards.sdk import builder

UID = "sloscaler-slo-overview"
SHED = 'error_code="InferencePoolResourceExhausted"'


def _burn(window: str) -> Query:
    return Query(
        f"sloscaler:slo_errors:ratio_rate{window}{{{v.POLICY}}}"
        f" / on (namespace, policy) (1 - sloscaler:slo_objective:ratio{{{v.POLICY}}})",
        f"{{{{policy}}}} {window}",
    )


def _observed_p90(histogram: str) -> Query:
    return Query(
        "histogram_quantile(0.9, sum by (le, model_name) "
        f"(rate({histogram}_bucket{{{v.MODEL}}}[$__rate_interval])))",
        "{{model_name}} observed p90",
    )


def _requests(selector: str) -> str:
    return f"sum by (model_name) (rate({selector}[$__rate_interval]))"


def build() -> builder.Dashboard:
    scheduled = _requests(f"inference_objective_request_total{{{v.MODEL}}}")
    shed = _requests(f"inference_objective_request_error_total{{{v.MODEL}, {SHED}}}")
    # no error series until the gateway first sheds: then the shed rate is 0, not absent
    shed_or_zero = f"({shed} or {scheduled} * 0)"
    board = dashboard(
        UID,
        "sloscaler / SLO overview",
        "Per SLOPolicy: attainment, error budget and burn rate, observed p90 latency against "
        "the objective, and requests shed by the gateway.",
        [v.datasource(), v.namespace(), v.policy(), v.model()],
    )
    board = board.with_row(row("Service level"))
    for title, description, expr, thresholds in (
        (
            "Attainment, last hour",
            "Share of requests that met both the TTFT and the TPOT objective over the last hour "
            "(sloscaler:slo_attainment:ratio_rate1h).",
            f"sloscaler:slo_attainment:ratio_rate1h{{{v.POLICY}}}",
            (Step(None, "red"), Step(0.95, "orange"), Step(0.99, "green")),
        ),
        (
            "Attainment, last 3 days",
            "The same over three days, the window of the error budget.",
            f"sloscaler:slo_attainment:ratio_rate3d{{{v.POLICY}}}",
            (Step(None, "red"), Step(0.95, "orange"), Step(0.99, "green")),
        ),
        (
            "Error budget left (3 days)",
            "1 − errors ÷ allowed errors over three days: 100% untouched, 0% spent, negative "
            "overspent (sloscaler:slo_error_budget_remaining:ratio_3d).",
            f"sloscaler:slo_error_budget_remaining:ratio_3d{{{v.POLICY}}}",
            (Step(None, "red"), Step(0.0, "orange"), Step(0.25, "green")),
        ),
        (
            "Objective",
            "The attainment each SLOPolicy promises (its spec.objectives.attainment).",
            f"sloscaler:slo_objective:ratio{{{v.POLICY}}}",
            (),
        ),
    ):
        board = board.with_panel(
            single_stat(
                title,
                description,
                "percentunit",
                [Query(expr, "{{policy}}")],
                thresholds=thresholds,
                decimals=2,
            )
        )
    board = board.with_panel(
        time_series(
            "Error budget burn rate",
            "How many times faster than sustainable the budget burns (1 = spent exactly at the "
            "end of the window). The fast-burn alert fires above 14.4 over 1 h and 5 min, the "
            "slow-burn alert above 6 over 6 h and 30 min.",
            "none",
            [_burn("5m"), _burn("1h"), _burn("6h")],
            min_value=0,
            lines=(Step(6, "orange"), Step(14.4, "red")),
        )
    ).with_panel(
        time_series(
            "Requests missing the objective",
            "Share of requests whose TTFT or TPOT exceeded the objective (the SLI, from the "
            "per-policy recording rules).",
            "percentunit",
            [
                Query(f"sloscaler:slo_errors:ratio_rate5m{{{v.POLICY}}}", "{{policy}} 5m"),
                Query(f"sloscaler:slo_errors:ratio_rate1h{{{v.POLICY}}}", "{{policy}} 1h"),
            ],
            min_value=0,
        )
    )
    board = board.with_row(row("Latency against the objective"))
    board = board.with_panel(
        time_series(
            "p90 time to first token",
            "Observed p90 TTFT of the policies' models over every pod (vLLM's "
            "time_to_first_token histogram, queueing included) against the objective.",
            "s",
            [
                _observed_p90("vllm:time_to_first_token_seconds"),
                Query(
                    f"max by (policy) (sloscaler_slo_ttft_seconds{{{v.POLICY}}})",
                    "{{policy}} objective",
                ),
            ],
            min_value=0,
        )
    ).with_panel(
        time_series(
            "p90 time per output token",
            "Observed p90 of each request's mean time per output token (vLLM's "
            "request_time_per_output_token histogram, what the SLI counts) against the "
            "objective.",
            "s",
            [
                _observed_p90("vllm:request_time_per_output_token_seconds"),
                Query(
                    f"max by (policy) (sloscaler_slo_tpot_seconds{{{v.POLICY}}})",
                    "{{policy}} objective",
                ),
            ],
            min_value=0,
        )
    )
    board = board.with_row(row("Traffic and shedding"))
    return (
        board.with_panel(
            time_series(
                "Requests scheduled and shed",
                "Requests the gateway sent to a pod, and requests it rejected with "
                "InferencePoolResourceExhausted (sheddable classes while capacity is short).",
                "reqps",
                [
                    Query(scheduled, "{{model_name}} scheduled"),
                    Query(shed_or_zero, "{{model_name}} shed"),
                ],
                width=8,
                min_value=0,
            )
        )
        .with_panel(
            time_series(
                "Shed rate",
                "Shed ÷ offered (scheduled + shed) requests.",
                "percentunit",
                [Query(f"{shed_or_zero} / ({scheduled} + {shed_or_zero})", "{{model_name}}")],
                width=8,
                min_value=0,
            )
        )
        .with_panel(
            time_series(
                "Requests waiting at the gateway",
                "Requests held in the gateway's flow-control queue: demand no pod has seen yet "
                "(what wakes a pool scaled to zero). An llm-d EPP exports the gauge under both "
                "names; the inner max counts it once.",
                "short",
                [
                    Query(
                        "sum by (model_name) (max without () ({__name__=~"
                        '"inference_extension_flow_control_queue_size'
                        f'|llm_d_epp_flow_control_queue_size", {v.MODEL}}}))',
                        "{{model_name}}",
                    )
                ],
                width=8,
                min_value=0,
            )
        )
    )
