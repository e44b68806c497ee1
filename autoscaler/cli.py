"""The ``sloscaler`` command line.

One command per job an operator has: ``simulate`` (what would a policy do to my traffic), and, as
they land, ``bench``, ``run``, ``predictor``, ``dashboards``, ``crd`` and ``explain``. Every error a
user can cause (a bad scenario, a malformed trace) ends with a one-line message naming the file
and field and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from autoscaler.logging import configure
from autoscaler.policies import POLICIES, build_scorer, prepare_policy
from predictor.cli import predictor_app
from simulator.perf.catalog import load_catalog
from simulator.scenario import ScenarioError, bundled_scenarios, load_scenario
from simulator.traces.errors import TraceFormatError

app = typer.Typer(
    name="sloscaler",
    help="Closed-loop SLO autoscaler for LLM inference on Kubernetes, with a vLLM-faithful "
    "cluster simulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err = Console(stderr=True)

app.add_typer(predictor_app, name="predictor", help="Latency models: train, evaluate, serve.")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _summary_table(summary: dict[str, Any]) -> Table:
    t = Table(title=f"{summary['scenario']} · policy {summary['policy']} · seed {summary['seed']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    slo = summary["slo"]
    t.add_row("requests", f"{summary['requests']:,}")
    t.add_row(
        "completed / shed / failed",
        f"{summary['completed']:,} / {summary['shed']:,} / {summary['failed']:,}",
    )
    t.add_row(
        f"SLO attainment (TTFT ≤ {slo['ttft_ms']:g} ms and TPOT ≤ {slo['tpot_ms']:g} ms)",
        f"{summary['slo_attainment']:.4f}",
    )
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
        p = summary[key]
        if p["p50"] is not None:
            t.add_row(
                f"{label} p50 / p90 / p99",
                " / ".join(f"{p[q] * 1000:.1f} ms" for q in ("p50", "p90", "p99")),
            )
    t.add_row("GPU-hours", f"{summary['gpu_hours']:.2f}")
    t.add_row("cost", f"${summary['cost']:.2f}")
    t.add_row(
        "simulated / wall time", f"{summary['sim_seconds']:.0f} s / {summary['wall_seconds']:.1f} s"
    )
    for p in summary["pools"]:
        t.add_row(
            f"pool {p['name']} ({p['role']}, {p['accelerator']}×{p['gpus_per_replica']})",
            f"replicas mean {p['replicas_mean']:.2f}, max {p['replicas_max']}; "
            f"{p['gpu_hours']:.2f} GPU-h",
        )
    return t


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Option(help="bundled scenario name or a scenario YAML file")
    ] = "azure-conv-h100",
    trace: Annotated[
        Path | None,
        typer.Option(
            help="replace the scenario's trace: Azure CSV, Mooncake JSONL, ServeGen aggregate "
            "CSV or native CSV (arrival_s,input_tokens,output_tokens[,prefix_id,prefix_tokens,"
            "priority,model]); detected from extension and content"
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(help=f"control policy, default the scenario's: {', '.join(POLICIES)}"),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="replay only arrivals in the first S seconds", min=1)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the scenario's)")] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="write the JSON summary to FILE, or '-' for stdout"),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="write a self-contained HTML report to FILE.html")
    ] = None,
    openmetrics: Annotated[
        Path | None,
        typer.Option(
            help="also write every pod's vLLM metrics as an OpenMetrics file "
            "(loadable with promtool tsdb create-blocks-from openmetrics)"
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "warning",
) -> None:
    """Replay a trace through the simulated cluster and report SLO attainment and cost.

    The same seed gives the same result (apart from wall time). With no options this runs the
    default scenario: the Azure LLM conversation trace (2023) on H100 pods.
    """
    configure(log_level)
    from simulator.runner import build_trace, run_scenario

    policy_name = policy or "static"
    try:
        sc = load_scenario(scenario)
        policy_name = policy or sc.policy.name
        trace_obj = build_trace(sc, trace, seed)
        if duration is not None:
            trace_obj = trace_obj.window(0.0, duration)
        sc, controller = prepare_policy(policy_name, sc, trace_obj)
        scorer = build_scorer(sc)
    except (ScenarioError, TraceFormatError, ValueError) as e:
        raise _fail(str(e)) from None
    hooks: tuple[Any, ...] = ()
    writer = None
    if openmetrics is not None:
        from simulator.metrics import OpenMetricsWriter

        writer = OpenMetricsWriter(openmetrics)
        hooks = ((15.0, lambda t, cluster: writer.write(cluster.metric_sources(), t)),)
    progress_cb = None
    bar = None
    if sys.stderr.isatty() and json_out != "-":
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} sim-s"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        task = bar.add_task("sim", total=1.0)

        def progress_cb(now: float, total: float) -> None:
            bar.update(task, completed=min(now, total), total=total)

        bar.start()
    try:
        result = run_scenario(
            sc,
            controller=controller,
            policy_name=policy_name,
            seed=seed,
            progress=progress_cb,
            sample_hooks=hooks,
            trace=trace_obj,
            scorer=scorer,
        )
    except (ScenarioError, TraceFormatError) as e:
        raise _fail(str(e)) from None
    finally:
        if bar is not None:
            bar.stop()
        if writer is not None:
            writer.close()
    summary = result.summary
    if json_out == "-":
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        Console().print(_summary_table(summary))
        if json_out:
            _write_atomic(Path(json_out), json.dumps(summary, indent=2) + "\n")
    if report is not None:
        from simulator.report import render_report

        _write_atomic(report, render_report(result))
        if json_out != "-":
            Console().print(f"report written to {report}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@app.command()
def explain(
    scenario: Annotated[
        str, typer.Option(help="bundled scenario name or a scenario YAML file")
    ] = "azure-conv-h100",
    at: Annotated[float, typer.Option(help="simulated time to explain, seconds", min=0)] = 600.0,
    policy: Annotated[str, typer.Option(help="a policy with a control loop")] = "slo",
    seed: Annotated[int | None, typer.Option(help="random seed (default: the scenario's)")] = None,
    trace: Annotated[Path | None, typer.Option(help="replace the scenario's trace")] = None,
) -> None:
    """Explain why each pool had its size at a moment of a simulated run.

    Replays the scenario up to ``--at`` and prints, per pool, the decision of the last tick at or
    before that time: demand forecast, capacity per replica at the SLO, the recommendation, every
    normalization stage with its reason, and the predicted p90 latency against the SLO.
    """
    configure("warning")
    from simulator.runner import build_trace, run_scenario

    try:
        sc = load_scenario(scenario)
        trace_obj = build_trace(sc, trace, seed).window(0.0, at + 1.0)
        sc, controller = prepare_policy(policy, sc, trace_obj)
        scorer = build_scorer(sc)
    except (ScenarioError, TraceFormatError, ValueError) as e:
        raise _fail(str(e)) from None
    loop = getattr(controller, "loop", None)
    if loop is None:
        raise _fail(f"--policy {policy} has no control loop to explain; use slo")
    run_scenario(sc, controller=controller, seed=seed, trace=trace_obj, scorer=scorer)
    ticks = [(t, d) for t, d in loop.history if t <= at]
    if not ticks:
        raise _fail(f"no decision at or before {at:g}s")
    t, decision = ticks[-1]
    console = Console()
    console.print(f"[bold]{sc.name}[/] · policy {policy} · decision of the tick at {t:g}s")
    for d in decision.pools:
        table = Table(title=f"pool {d.pool} ({d.role}, {d.accelerator})", show_header=False)
        table.add_column("")
        table.add_column("")
        demand = "no data" if d.demand_rps is None else f"{d.demand_rps:.2f} req/s (upper forecast)"
        table.add_row("demand", demand)
        if d.capacity_rps is not None:
            table.add_row(
                "capacity per replica",
                f"{d.capacity_rps:.2f} req/s at the SLO ({d.capacity_source})",
            )
        table.add_row("replicas", f"{d.current} → recommended {d.raw} → {d.replicas}")
        for stage in d.stages:
            note = f"{stage.reason.value}: {stage.message}" if stage.message else stage.reason.value
            table.add_row(f"  {stage.name}", f"{stage.replicas}  {note}")
        table.add_row("reason", f"{d.reason.value} — {d.message}")
        if d.predicted_ttft_p90_s is not None and d.predicted_tpot_p90_s is not None:
            table.add_row(
                "predicted p90",
                f"TTFT {d.predicted_ttft_p90_s * 1000:.0f} ms (SLO {d.slo_ttft_s * 1000:.0f}), "
                f"TPOT {d.predicted_tpot_p90_s * 1000:.1f} ms (SLO {d.slo_tpot_s * 1000:.0f})",
            )
        console.print(table)


@app.command()
def scenarios() -> None:
    """List the bundled scenarios with their pools and SLOs."""
    t = Table(title="bundled scenarios")
    for col in ("name", "pools", "SLO (TTFT/TPOT ms)", "description"):
        t.add_column(col)
    for name in bundled_scenarios():
        sc = load_scenario(name)
        pools = ", ".join(f"{p.name}:{p.role}/{p.accelerator}×{p.gpus}" for p in sc.pools)
        t.add_row(name, pools, f"{sc.slo.ttft_ms:g}/{sc.slo.tpot_ms:g}", sc.description)
    Console().print(t)


@app.command()
def catalog() -> None:
    """List the accelerator and model profiles the simulator knows (measured or derived)."""
    cat = load_catalog()
    t = Table(title="accelerators")
    for col in ("name", "vendor", "memory GiB", "bf16 TFLOP/s", "HBM TB/s", "$/GPU-h", "derived"):
        t.add_column(col)
    for a in cat.accelerators.values():
        t.add_row(
            a.name,
            a.vendor,
            f"{a.memory_gib:g}",
            f"{a.peak_bf16_tflops:g}",
            f"{a.hbm_tbps:g}",
            f"{a.price_per_gpu_hour:.2f}",
            "yes" if a.derived else "no",
        )
    Console().print(t)
    m = Table(title="models")
    for col in ("name", "params (B)", "active (B)", "KV bytes/token", "max len"):
        m.add_column(col)
    for model in cat.models.values():
        m.add_row(
            model.name,
            f"{model.params_b:g}",
            f"{model.active_params_b:g}",
            f"{model.kv_bytes_per_token:,}",
            f"{model.max_model_len:,}",
        )
    Console().print(m)


crd_app = typer.Typer(help="The SLOPolicy CustomResourceDefinition.", no_args_is_help=True)
app.add_typer(crd_app, name="crd", help="The SLOPolicy CustomResourceDefinition.")


@crd_app.command("render")
def crd_render(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="write to FILE (e.g. deploy/crd/sloscaler.dev_slopolicies.yaml); default stdout",
        ),
    ] = None,
) -> None:
    """Print the SLOPolicy CRD (apiextensions.k8s.io/v1) generated from the pydantic models."""
    from autoscaler.crd import render_crd_yaml

    text = render_crd_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomic(output, text)


if __name__ == "__main__":  # pragma: no cover
    app()
