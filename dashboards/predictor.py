"""The Predictor dashboard: can the controller trust its latency model?

Why it exists: every size the controller picks rests on predicted p90 TTFT and TPOT per
accelerator. This dashboard puts the prediction next to what the pods then measured, shows the
model's p90 coverage (the share of requests under the predicted p90: 0.9 when calibrated, well
below when optimistic), how old the serving model is, and which pools run on a learned model
versus the analytic fallback. The last row shows the predictor service itself: whether its
window models are ready, how its trainings end, why it retrains, and how well its request-level
model covers what it is told afterwards.

Predicted and observed do not describe exactly the same moment: the prediction is for the
desired size and the forecast demand, the observation is what the current pods served. A
steady ratio far from 1 is the signal, not a single spike.
"""

from __future__ import annotations

from dashboards import variables as v
from dashboards.panels import Query, Step, dashboard, row, single_stat, state_timeline, time_series
from dashboards.sdk import builder

UID = "sloscaler-predictor"


def _observed(histogram: str) -> str:
    rate = f'rate({histogram}_bucket{{namespace="$namespace"}}[$__rate_interval])'
    return f"histogram_quantile(0.9, sum by (le, accelerator) ({v.with_pool_labels(rate)}))"


def _predicted(gauge: str) -> str:
    return f"max by (accelerator) ({gauge}{{{v.ACCELERATOR}}})"


TTFT = ("vllm:time_to_first_token_seconds", "sloscaler_predicted_ttft_seconds")
TPOT = ("vllm:request_time_per_output_token_seconds", "sloscaler_predicted_tpot_seconds")


def build() -> builder.Dashboard:
    board = dashboard(
        UID,
        "sloscaler / Predictor",
        "Predicted against observed p90 latency per accelerator, p90 coverage, model age and "
        "whether a learned model or the analytic fallback serves each pool; the predictor "
        "service's window models, trainings, retrains and online calibration.",
        [v.datasource(), v.namespace(), v.policy(), v.accelerator(), v.model(), v.predictor()],
    )
    board = board.with_row(row("Predicted against observed"))
    for title, (histogram, gauge), objective in (
        ("p90 time to first token", TTFT, "sloscaler_slo_ttft_seconds"),
        ("p90 time per output token", TPOT, "sloscaler_slo_tpot_seconds"),
    ):
        board = board.with_panel(
            time_series(
                title,
                "Predicted p90 per accelerator (the controller's model, at the desired size) "
                "against the p90 its pods measured (vLLM histograms), and the objective.",
                "s",
                [
                    Query(_predicted(gauge), "{{accelerator}} predicted"),
                    Query(_observed(histogram), "{{accelerator}} observed"),
                    Query(f"max({objective}{{{v.POLICY}}})", "objective"),
                ],
                min_value=0,
            )
        )
    board = board.with_panel(
        time_series(
            "Observed ÷ predicted p90",
            "1 when the model is right; above 1 it is optimistic (pools end up too small), below "
            "1 pessimistic (too large).",
            "none",
            [
                Query(
                    f"{_observed(TTFT[0])} / on (accelerator) {_predicted(TTFT[1])}",
                    "{{accelerator}} TTFT",
                ),
                Query(
                    f"{_observed(TPOT[0])} / on (accelerator) {_predicted(TPOT[1])}",
                    "{{accelerator}} TPOT",
                ),
            ],
            width=24,
            min_value=0,
            lines=(Step(1, "orange"),),
        )
    )
    board = board.with_row(row("Calibration and freshness"))
    board = (
        board.with_panel(
            time_series(
                "p90 coverage",
                "Share of recently observed requests under the model's predicted p90: 0.9 when "
                "calibrated (dashed line); well below means the model is optimistic.",
                "percentunit",
                [
                    Query(
                        f"sloscaler_model_coverage_ratio{{{v.ACCELERATOR}}}",
                        "{{pool}} ({{accelerator}})",
                    )
                ],
                min_value=0,
                max_value=1,
                lines=(Step(0.9, "orange"),),
            )
        )
        .with_panel(
            time_series(
                "Model age",
                "Time since the model serving each pool was trained (no value while the "
                "analytic fallback serves).",
                "s",
                [
                    Query(
                        f"sloscaler_model_age_seconds{{{v.ACCELERATOR}}}",
                        "{{pool}} ({{accelerator}})",
                    )
                ],
                min_value=0,
            )
        )
        .with_panel(
            state_timeline(
                "Learned model or fallback",
                "Per pool: a learned model that passed its checks serves it, or the analytic "
                "fallback does (the SLOPolicy's ModelReady condition says why).",
                [
                    Query(
                        f"sloscaler_model_ready{{{v.ACCELERATOR}}}",
                        "{{pool}} ({{accelerator}})",
                    )
                ],
                mappings={"0": ("analytic fallback", "orange"), "1": ("learned", "green")},
                width=18,
                height=6,
            )
        )
        .with_panel(
            single_stat(
                "Pools on a learned model",
                "Share of the selected pools a learned model serves now.",
                "percentunit",
                [
                    Query(
                        f"sum(sloscaler_model_ready{{{v.ACCELERATOR}}})"
                        f" / count(sloscaler_model_ready{{{v.ACCELERATOR}}})",
                        "learned",
                    )
                ],
                height=6,
                thresholds=(Step(None, "orange"), Step(1, "green")),
            )
        )
    )
    return _predictor_service(board)


def _increase(counter: str, by: str) -> str:
    return f"sum by ({by}) (increase({counter}{{{v.PREDICTOR}}}[$__rate_interval]))"


def _predictor_service(board: builder.Dashboard) -> builder.Dashboard:
    """The row of the predictor service's own series (``sloscaler_predictor_*``)."""
    per_target = "{{accelerator}} {{target}}"
    return (
        board.with_row(row("Predictor service"))
        .with_panel(
            state_timeline(
                "Window models ready",
                "Per (accelerator, role): whether the service's window model answers capacity "
                "questions; not ready, the service answers from its fallback.",
                [
                    Query(
                        "max by (accelerator, role) (sloscaler_predictor_window_model_ready"
                        f"{{{v.PREDICTOR_ACCELERATOR}}})",
                        "{{accelerator}} / {{role}}",
                    )
                ],
                mappings={"0": ("not ready", "orange"), "1": ("ready", "green")},
                width=12,
            )
        )
        .with_panel(
            state_timeline(
                "Drift",
                "Per accelerator and target: whether new samples score the serving model worse "
                "than its held-out rows did (a drift retrain follows).",
                [
                    Query(
                        f"max by (accelerator, target) (sloscaler_predictor_drift"
                        f"{{{v.PREDICTOR_ACCELERATOR}}})",
                        per_target,
                    )
                ],
                mappings={"0": ("ok", "green"), "1": ("drifted", "red")},
                width=12,
            )
        )
        .with_panel(
            time_series(
                "Window trainings by result",
                "Window-model trainings from Prometheus, by how they ended: published, or why "
                "not (Prometheus unavailable or rejecting, no windows, not ready).",
                "short",
                [
                    Query(
                        _increase("sloscaler_predictor_window_trainings_total", "result"),
                        "{{result}}",
                    )
                ],
                min_value=0,
                stack=True,
                bars=True,
            )
        )
        .with_panel(
            time_series(
                "Retrains by trigger",
                "Request-level model retrainings by trigger (first, cadence, drift, manual) and "
                "result (installed, or not ready and the old model kept).",
                "short",
                [
                    Query(
                        _increase("sloscaler_predictor_retrains_total", "trigger, result"),
                        "{{trigger}} ({{result}})",
                    )
                ],
                min_value=0,
                stack=True,
                bars=True,
            )
        )
        .with_panel(
            time_series(
                "Online p90 coverage",
                "Recency-weighted share of newly posted actuals at or under the request-level "
                "model's predicted p90: 0.9 when calibrated (dashed line).",
                "percentunit",
                [
                    Query(
                        f"sloscaler_predictor_online_coverage{{{v.PREDICTOR_ACCELERATOR}, "
                        'quantile="0.9"}',
                        per_target,
                    )
                ],
                min_value=0,
                max_value=1,
                lines=(Step(0.9, "orange"),),
            )
        )
        .with_panel(
            time_series(
                "Adaptive conformal offset",
                "The online log offset added to the served quantile per accelerator and target: "
                "0 when the split-conformal calibration holds, above 0 the service raises its "
                "predictions (too many misses), below 0 it lowers them.",
                "none",
                [
                    Query(
                        f"sloscaler_predictor_adaptive_offset{{{v.PREDICTOR_ACCELERATOR}}}",
                        per_target,
                    )
                ],
            )
        )
    )
