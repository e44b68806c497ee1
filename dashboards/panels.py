"""Panel, query and dashboard constructors shared by the four dashboards.

Why: the dashboards show the same few kinds of things — a latency against its objective, a ratio
against a target, a count per pool, a state over time — and building each through these
functions keeps units, legends, sizes, thresholds and the data source reference identical across
them, so each dashboard module says only what each panel asks and why.

Queries of time series and state timelines are range queries; stat, bar gauge and table panels
ask one instant query at the end of the dashboard's range (their ``$__range`` windows cover the
whole range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from dashboards.sdk import (
    Builder,
    bargauge,
    builder,
    common,
    common_models,
    models,
    prometheus,
    prometheus_models,
    stat,
    statetimeline,
    table,
    timeseries,
)
from dashboards.variables import DATASOURCE

TAG = "sloscaler"

_Panel = TypeVar(
    "_Panel", timeseries.Panel, stat.Panel, statetimeline.Panel, bargauge.Panel, table.Panel
)


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression of a panel and its legend (``{{label}}`` templates)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """A threshold: from ``value`` upwards (``None``: from −∞) the panel uses ``color``."""

    value: float | None
    color: str


def _thresholds(steps: Sequence[Step]) -> builder.ThresholdsConfig:
    return (
        builder.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=s.value, color=s.color) for s in steps])
    )


def _with_queries(
    panel: _Panel,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    instant: bool,
    table_format: bool = False,
) -> _Panel:
    if not queries:
        raise ValueError(f"panel {title!r} has no query")
    panel = panel.title(title).description(description).datasource(DATASOURCE)
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .expr(q.expr)
            .legend_format(q.legend or "__auto")
            .ref_id(chr(ord("A") + i))
        )
        target = target.instant() if instant else target.range()
        if table_format:
            target = target.format(prometheus_models.PromQueryFormat.TABLE)
        panel = panel.with_target(target)
    return panel


def time_series(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    min_value: float | None = None,
    max_value: float | None = None,
    lines: Sequence[Step] = (),
    stack: bool = False,
    bars: bool = False,
    steps: bool = False,
) -> timeseries.Panel:
    """A time series; ``lines`` draws dashed threshold lines (an objective, a burn rate)."""
    panel = _with_queries(timeseries.Panel(), title, description, queries, instant=False)
    panel = panel.unit(unit).span(width).height(height).fill_opacity(10 if not stack else 60)
    panel = panel.legend(
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.LIST)
        .placement(common_models.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if lines:
        panel = panel.thresholds(_thresholds([Step(None, "green"), *lines])).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    if stack:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(common_models.GraphDrawStyle.BARS)
    if steps:
        panel = panel.line_interpolation(common_models.LineInterpolation.STEP_AFTER)
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 6,
    height: int = 4,
    thresholds: Sequence[Step] = (),
    decimals: int | None = None,
) -> stat.Panel:
    """The latest value of each series, coloured by ``thresholds``."""
    panel = _with_queries(stat.Panel(), title, description, queries, instant=True)
    panel = panel.unit(unit).span(width).height(height)
    panel = panel.graph_mode(common_models.BigValueGraphMode.NONE).reduce_options(
        common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    )
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds)).color_mode(
            common_models.BigValueColorMode.VALUE
        )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def state_timeline(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    mappings: dict[str, tuple[str, str]],
    width: int = 24,
    height: int = 8,
) -> statetimeline.Panel:
    """One row per series; ``mappings`` turns values into text and colour (``"1": (text, c)``)."""
    panel = _with_queries(statetimeline.Panel(), title, description, queries, instant=False)
    value_map = models.ValueMap(
        options={
            value: models.ValueMappingResult(text=text, color=color, index=i)
            for i, (value, (text, color)) in enumerate(sorted(mappings.items()))
        }
    )
    return (
        panel.mappings([value_map])
        .span(width)
        .height(height)
        .show_value(common_models.VisibilityMode.NEVER)
    )


def bar_gauge(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
) -> bargauge.Panel:
    """Horizontal bars of each series' latest value (one per model, accelerator …)."""
    panel = _with_queries(bargauge.Panel(), title, description, queries, instant=True)
    return (
        panel.unit(unit)
        .span(width)
        .height(height)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def table_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
) -> table.Panel:
    """The latest samples as rows, one column per label."""
    panel = _with_queries(
        table.Panel(), title, description, queries, instant=True, table_format=True
    )
    return panel.span(width).height(height)


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Builder[models.VariableModel]],
) -> builder.Dashboard:
    """A dashboard with sloscaler's defaults: last 6 hours, 1 min refresh, shared crosshair,
    the ``sloscaler`` tag and a menu of the other sloscaler dashboards (keeping time and
    variables)."""
    board = (
        builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .editable()
        .link(
            builder.DashboardLink("sloscaler")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for var in variables:
        board = board.with_variable(var)
    return board


def row(title: str) -> builder.Row:
    return builder.Row(title)
