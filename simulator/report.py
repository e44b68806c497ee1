"""A self-contained HTML report of one simulation run.

The JSON summary says *whether* a run met its SLO; the report shows *when* and *why* it did not:
replicas against demand, latency and SLO attainment over time, and where requests waited. It is one
HTML file with plotly's JavaScript inlined once and no network requests (no CDN, no web fonts), so
it can be archived next to the run, attached to an issue, or opened on an air-gapped machine.

The figure builders take plain arrays (times in seconds, one series per pool name), not simulator
objects, so a multi-policy benchmark report can reuse them and :func:`page` for its own layout.

Latency over time is binned by *arrival* time, so a bin shows what the requests that arrived then
experienced. Example: a 2-hour run gets 60 s bins (120 bins); a request arriving at t = 130 s with
a 2.5 s TTFT lands in the bin [120 s, 180 s); that bin's p90 TTFT is numpy's 90th percentile of
the TTFTs of the completed requests that arrived in it, and its attainment is the fraction of *all*
requests arriving in it that met the SLO (shed and failed requests are misses).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from simulator.cluster import DONE
from simulator.summary import SLO, slo_met

if TYPE_CHECKING:
    from simulator.runner import RunResult

Series = npt.ArrayLike
_NICE_BIN_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200)
_MAX_BINS = 300
_PALETTE = qualitative.Plotly
_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;background:#f6f7f9;color:#1f2933}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 8px}h2{font-size:1.2em;margin:0 0 12px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px;margin:16px 0}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{padding:4px 12px;border-bottom:1px solid #e1e4e8;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f2f5}
.note{color:#6b7280;font-style:italic}.meta{color:#4b5563;margin:4px 0}
"""


# ---------------------------------------------------------------------------- binning
def latency_bin_s(span_s: float) -> float:
    """Bin width for latency over time: about 60 s, and never more than ~300 bins.

    The smallest "nice" width ≥ max(span / 300, min(60, span / 30)): 60 s for an hour (60 bins),
    10 s for five minutes (30 bins), 300 s for a day (288 bins).
    """
    want = max(span_s / _MAX_BINS, min(60.0, span_s / 30.0))
    return float(next((w for w in _NICE_BIN_S if w >= want), math.ceil(want / 3600) * 3600))


def bin_by_time(
    times: Series,
    values: Series,
    bin_s: float,
    end_s: float,
    stat: Callable[[np.ndarray], float],
) -> tuple[np.ndarray, np.ndarray]:
    """``(bin starts, stat of the values in each bin)`` over ``[0, end_s]``; NaN for empty bins.

    A value at time t falls in bin ``floor(t / bin_s)``; a value at exactly ``end_s`` joins the
    last bin.
    """
    t = np.asarray(times, dtype=float)
    v = np.asarray(values)
    n_bins = max(1, math.ceil(end_s / bin_s))
    starts = np.arange(n_bins) * bin_s
    out = np.full(n_bins, np.nan)
    if t.size:
        idx = np.clip((t // bin_s).astype(np.int64), 0, n_bins - 1)
        order = np.argsort(idx, kind="stable")
        bins, first = np.unique(idx[order], return_index=True)
        for b, chunk in zip(bins, np.split(v[order], first[1:]), strict=True):
            out[b] = stat(chunk)
    return starts, out


def p90(values: np.ndarray) -> float:
    """The 90th percentile (numpy's default, linear interpolation): a ``stat`` for bin_by_time."""
    return float(np.percentile(values, 90))


# ---------------------------------------------------------------------------- figures
def _time_axis(times: np.ndarray) -> tuple[np.ndarray, str]:
    """Times in the unit that reads best for the span: s up to 10 min, min up to 6 h, else h."""
    span = float(times.max() - times.min()) if times.size else 0.0
    if span <= 600:
        return times, "time (s)"
    if span <= 6 * 3600:
        return times / 60.0, "time (min)"
    return times / 3600.0, "time (h)"


def _axis_type(*series: Series) -> str:
    """'log' when the positive finite values span more than two decades, else 'linear'."""
    v = np.concatenate([np.atleast_1d(np.asarray(s, dtype=float)) for s in series])
    v = v[np.isfinite(v) & (v > 0)]
    return "log" if v.size and v.max() / v.min() > 100 else "linear"


def _color(i: int) -> str:
    return str(_PALETTE[i % len(_PALETTE)])


def _hline(x: np.ndarray, y: float, name: str, color: str = "#c0392b") -> go.Scatter:
    """A dashed horizontal reference line as a trace (correct on linear and log axes alike)."""
    x0, x1 = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    return go.Scatter(
        x=[x0, x1], y=[y, y], name=name, mode="lines", line={"dash": "dash", "color": color}
    )


def _style(fig: go.Figure, rows: int, xlabel: str, legend_x: float = 1.02) -> go.Figure:
    """Shared look: one x-axis title under the last row, the legend right of the plots."""
    fig.update_layout(
        template="plotly_white",
        height=160 + 260 * rows,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        legend={"x": legend_x, "y": 1},
        hovermode="x unified",
    )
    fig.update_xaxes(title_text=xlabel, row=rows, col=1)
    return fig


def replicas_figure(
    times: Series,
    replicas: Mapping[str, Series],
    ready: Mapping[str, Series] | None = None,
    demand_rps: Series | None = None,
) -> go.Figure:
    """Replicas (solid) and ready replicas (dotted) per pool as step lines; demand (req/s) on a
    secondary y-axis."""
    x, xlabel = _time_axis(np.asarray(times, dtype=float))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, (name, series) in enumerate(replicas.items()):
        line = {"shape": "hv", "color": _color(i)}
        fig.add_trace(go.Scatter(x=x, y=np.asarray(series), name=f"{name} replicas", line=line))
        if ready is not None and name in ready:
            dotted = {**line, "dash": "dot"}
            fig.add_trace(
                go.Scatter(x=x, y=np.asarray(ready[name]), name=f"{name} ready", line=dotted)
            )
    if demand_rps is not None:
        demand = go.Scatter(
            x=x,
            y=np.asarray(demand_rps),
            name="demand (req/s)",
            line={"color": "#9aa5b1", "width": 1},
        )
        fig.add_trace(demand, secondary_y=True)
        fig.update_yaxes(title_text="demand (req/s)", rangemode="tozero", secondary_y=True)
    fig.update_yaxes(title_text="replicas", rangemode="tozero", secondary_y=False)
    return _style(fig, 1, xlabel, legend_x=1.1)  # clear of the demand axis


def latency_figure(
    times: Series,
    ttft_p90_s: Series,
    tpot_p90_s: Series,
    slo_ttft_s: float,
    slo_tpot_s: float,
    attainment: Series | None = None,
    attainment_target: float | None = None,
) -> go.Figure:
    """TTFT p90 and TPOT p90 (ms) per time bin against their SLOs (dashed), and optionally the
    per-bin SLO attainment against its target. Latency axes turn logarithmic past two decades."""
    x, xlabel = _time_axis(np.asarray(times, dtype=float))
    rows = 3 if attainment is not None else 2
    titles = ["TTFT p90 (ms)", "TPOT p90 (ms)", "SLO attainment"][:rows]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles)
    for row, (label, series, slo_s) in enumerate(
        [("TTFT", ttft_p90_s, slo_ttft_s), ("TPOT", tpot_p90_s, slo_tpot_s)], start=1
    ):
        ms = np.asarray(series, dtype=float) * 1000.0
        fig.add_trace(
            go.Scatter(x=x, y=ms, name=f"{label} p90", mode="lines+markers", marker={"size": 4}),
            row=row,
            col=1,
        )
        fig.add_trace(_hline(x, slo_s * 1000.0, f"{label} SLO"), row=row, col=1)
        fig.update_yaxes(type=_axis_type(ms, [slo_s * 1000.0]), row=row, col=1)
    if attainment is not None:
        fig.add_trace(
            go.Scatter(x=x, y=np.asarray(attainment), name="attainment", line={"shape": "hv"}),
            row=3,
            col=1,
        )
        if attainment_target is not None:
            fig.add_trace(_hline(x, attainment_target, "attainment target"), row=3, col=1)
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=3, col=1)
    return _style(fig, rows, xlabel)


def load_figure(
    times: Series,
    running: Mapping[str, Series],
    waiting: Mapping[str, Series],
    kv_usage: Mapping[str, Series],
    queue: Series | None = None,
) -> go.Figure:
    """Per pool: running (solid) and waiting (dashed) requests, mean KV-cache usage; and the
    gateway's flow-control queue (requests held because no replica could take them)."""
    x, xlabel = _time_axis(np.asarray(times, dtype=float))
    rows = 3 if queue is not None else 2
    titles = ["requests running / waiting", "KV-cache usage (mean of ready pods)", "gateway queue"]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles[:rows])
    for i, name in enumerate(running):
        line = {"color": _color(i)}
        dashed = {**line, "dash": "dash"}
        run = go.Scatter(x=x, y=np.asarray(running[name]), name=f"{name} running", line=line)
        wait = go.Scatter(x=x, y=np.asarray(waiting[name]), name=f"{name} waiting", line=dashed)
        fig.add_traces([run, wait], rows=1, cols=1)
        kv = go.Scatter(x=x, y=np.asarray(kv_usage[name]), name=f"{name} KV", line=line)
        fig.add_trace(kv, row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=2, col=1)
    if queue is not None:
        held = go.Scatter(x=x, y=np.asarray(queue), name="gateway queue", line={"shape": "hv"})
        fig.add_trace(held, row=3, col=1)
    return _style(fig, rows, xlabel)


# ---------------------------------------------------------------------------- HTML
def figure_html(fig: go.Figure, div_id: str) -> str:
    """A figure as a ``<div id=div_id>`` plus its plotting script; needs :func:`page`'s JS."""
    return str(fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id, config=_CONFIG))


def note(text: str) -> str:
    """A short explanation shown where a figure cannot be drawn."""
    return f'<p class="note">{html.escape(text)}</p>'


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table of escaped text cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete offline HTML document: ``(heading, body HTML)`` sections under ``title``, with
    plotly's JavaScript embedded once for every figure of the page."""
    body = "".join(
        f"<section><h2>{html.escape(heading)}</h2>{content}</section>"
        for heading, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>\n"
    )


# ---------------------------------------------------------------------------- the run report
def _num(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{value * scale:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f} %"


def _overview(result: RunResult) -> str:
    s, sc, trace = result.summary, result.scenario, result.output.trace
    slo = s["slo"]
    att = s["slo_attainment"]
    verdict = "" if att is None else (" — met" if att >= slo["attainment"] else " — missed")
    meta = [
        ("scenario", sc.name),
        ("policy", f"{s['policy']} (controller {result.output.controller})"),
        ("seed", s["seed"]),
        ("trace", f"{trace.name}, {len(trace.requests):,} requests"),
        ("trace source", trace.source or "–"),
        (
            "SLO",
            f"each request TTFT ≤ {slo['ttft_ms']:g} ms, TPOT ≤ {slo['tpot_ms']:g} ms, "
            f"attainment ≥ {slo['attainment'] * 100:g} %",
        ),
    ]
    lines = "".join(f'<p class="meta"><b>{k}</b>: {html.escape(str(v))}</p>' for k, v in meta)
    desc = f"<p>{html.escape(sc.description)}</p>" if sc.description else ""
    ttft, tpot = s["ttft_s"], s["tpot_s"]
    summary = table(
        ["metric", "value"],
        [
            ("requests", f"{s['requests']:,}"),
            ("completed / shed / failed", f"{s['completed']:,} / {s['shed']:,} / {s['failed']:,}"),
            ("SLO attainment", f"{_pct(att)} (target {_pct(slo['attainment'])}){verdict}"),
            *(
                (f"{name} p50 / p90 / p99 (ms)", " / ".join(_num(d[q], 1000.0) for q in d))
                for name, d in (("TTFT", ttft), ("TPOT", tpot))
            ),
            ("GPU-hours", _num(s["gpu_hours"], digits=2)),
            ("cost ($)", _num(s["cost"], digits=2)),
            ("mean GPUs", _num(s["mean_gpus"], digits=2)),
            ("simulated seconds", _num(s["sim_seconds"])),
            ("wall seconds", _num(s["wall_seconds"], digits=2)),
        ],
    )
    pools = table(
        [
            "pool",
            "role",
            "accelerator × GPUs",
            "replicas mean",
            "replicas max",
            "GPU-hours",
            "cost ($)",
        ],
        [
            (
                p["name"],
                p["role"],
                f"{p['accelerator']} × {p['gpus_per_replica']}",
                _num(p["replicas_mean"], digits=2),
                p["replicas_max"],
                _num(p["gpu_hours"], digits=2),
                _num(p["cost"], digits=2),
            )
            for p in s["pools"]
        ],
    )
    return desc + lines + summary + pools


def _latency_section(result: RunResult) -> str:
    out, sc = result.output, result.scenario
    rec = out.records
    done = rec.status == DONE
    if not done.any():
        return note("No request completed, so there is no latency to plot.")
    arrival = rec.arrival
    span = float(arrival.max())
    bin_s = latency_bin_s(span)
    starts, ttft = bin_by_time(arrival[done], rec.ttft()[done], bin_s, span, p90)
    _, tpot = bin_by_time(arrival[done], rec.tpot()[done], bin_s, span, p90)
    slo = SLO(sc.slo.ttft_ms, sc.slo.tpot_ms, sc.slo.attainment)
    met = slo_met(out, slo).astype(float)
    _, attainment = bin_by_time(arrival, met, bin_s, span, lambda v: float(v.mean()))
    fig = latency_figure(
        starts + bin_s / 2,
        ttft,
        tpot,
        slo.ttft_ms / 1000.0,
        slo.tpot_ms / 1000.0,
        attainment=attainment,
        attainment_target=slo.attainment,
    )
    caption = note(
        f"Requests binned by arrival time, {bin_s:g} s bins; p90 over completed requests."
    )
    return figure_html(fig, "fig-latency") + caption


def render_report(result: RunResult) -> str:
    """The complete HTML report of one run (see the module docstring)."""
    out = result.output
    samples = out.samples
    sections = [("Summary", _overview(result))]
    if samples:
        times = np.array([s.t for s in samples])

        def per_pool(field: str) -> dict[str, list[Any]]:
            return {p.spec.name: [getattr(s, field)[p.index] for s in samples] for p in out.pools}

        demand = np.array([s.arrivals for s in samples]) / out.sample_interval_s
        replicas = replicas_figure(times, per_pool("replicas"), per_pool("ready"), demand)
        load = load_figure(
            times,
            per_pool("running"),
            per_pool("waiting"),
            per_pool("kv_usage"),
            [s.queue for s in samples],
        )
        replicas_html = figure_html(replicas, "fig-replicas")
        load_html = figure_html(load, "fig-load")
    else:
        replicas_html = load_html = note("The run recorded no samples.")
    sections += [
        ("Replicas and demand", replicas_html),
        ("Latency and SLO attainment over time", _latency_section(result)),
        ("Load", load_html),
    ]
    return page(f"sloscaler run — {result.scenario.name}", sections)
