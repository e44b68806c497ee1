"""The ``sloscaler`` command line.

One command per job an operator has: ``simulate`` (what would a policy do to my traffic), and, as
they land, ``bench``, ``run``, ``predictor``, ``dashboards``, ``crd`` and ``explain``. Every error a
user can cause (a bad scenario, a malformed trace) ends with a one-line message naming the file
and field and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from autoscaler.logging import configure
from autoscaler.policies import POLICIES, build_scorer, prepare_policy
from dashboards.cli import dashboards_app
from predictor.cli import predictor_app
from simulator.perf.catalog import load_catalog
from simulator.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario
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
app.add_typer(dashboards_app, name="dashboards", help="Grafana dashboards: render or check JSON.")


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
    gw = summary.get("gateway", {})
    if gw.get("latency_model") == "learned":
        first = gw["first_model_s"]
        share = gw["learned_share"]
        t.add_row(
            f"gateway {gw['scorer']}, learned latency models",
            f"{gw['trainings']} training{'' if gw['trainings'] == 1 else 's'} on "
            f"{gw['samples_posted']:,} requests; "
            + ("no model yet" if first is None else f"first at {first:.0f} s")
            + ("" if share is None else f"; {share:.0%} of predictions"),
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
    replicas: Annotated[
        str,
        typer.Option(
            help="start pools at these replicas instead of the scenario's: POOL=N,… (e.g. the "
            "size of your running deployment)"
        ),
    ] = "",
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
        sc = _start_replicas(load_scenario(scenario), replicas)
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


def _start_replicas(sc: Scenario, text: str) -> Scenario:
    """The scenario with ``--replicas`` applied: ``"prefill=6,decode=2"`` sets those pools'
    initial replicas (within each pool's min/max)."""
    if not text.strip():
        return sc
    pools = {p.name: p for p in sc.pools}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not value.strip().isdigit():
            raise ScenarioError(f"--replicas: {part!r} is not POOL=N")
        if name not in pools:
            raise ScenarioError(
                f"--replicas: unknown pool {name!r}; the scenario has {', '.join(pools)}"
            )
        n = int(value)
        p = pools[name]
        if not p.min_replicas <= n <= p.max_replicas:
            raise ScenarioError(
                f"--replicas: {name}={n} is outside the pool's "
                f"min_replicas..max_replicas ({p.min_replicas}..{p.max_replicas})"
            )
        pools[name] = p.model_copy(update={"replicas": n})
    return sc.model_copy(update={"pools": list(pools.values())})


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
    before that time: demand forecast, capacity per replica at the SLO and the error budget's
    factor in it, the recommendation, every normalization stage with its reason, and the
    predicted p90 latency against the SLO.
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
            table.add_row(
                "error budget", f"capacity ×{d.capacity_scale:.2f} (learned from SLO attainment)"
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


def _capacity_table(text: str) -> dict[str, float]:
    """``"H100=4,L40S=2"`` → ``{"H100": 4.0, "L40S": 2.0}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise _fail(f"--capacity: {part!r} is not ACCELERATOR=RPS") from None
        if not sep or out[name.strip()] <= 0:
            raise _fail(f"--capacity: {part!r} is not ACCELERATOR=RPS with RPS > 0")
    return out


@app.command()
def run(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="kubeconfig file; default: in-cluster config, else ~/.kube/config"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="reconcile SLOPolicies of this namespace only")
    ] = None,
    tick: Annotated[float, typer.Option(help="control interval, s", min=1)] = 15.0,
    leader_elect: Annotated[
        bool, typer.Option(help="elect a leader on a Lease (run several replicas)")
    ] = True,
    lease_namespace: Annotated[
        str, typer.Option(help="namespace of the leader Lease")
    ] = "sloscaler-system",
    identity: Annotated[
        str | None, typer.Option(help="this replica's identity (default $POD_NAME or hostname)")
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="port of /metrics, /healthz, /readyz")] = 8080,
    external_metrics_port: Annotated[
        int, typer.Option(help="HTTPS port of the external metrics API for HPA")
    ] = 6443,
    tls_cert: Annotated[
        Path | None, typer.Option(help="serving certificate (PEM); default: self-signed")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="key of --tls-cert")] = None,
    requestheader_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="front-proxy CA (requestheader-client-ca-file of the kube-apiserver); without "
            "it the external metrics API is not served"
        ),
    ] = None,
    requestheader_allowed_names: Annotated[
        str, typer.Option(help="comma-separated CNs allowed as front proxy")
    ] = "front-proxy-client,aggregator",
    authentication_delegation: Annotated[
        bool | None,
        typer.Option(
            "--authentication-delegation/--no-authentication-delegation",
            help="external metrics API: also accept bearer tokens (TokenReview) and authorize "
            "every request by SubjectAccessReview, as an aggregated API server does; needs the "
            "system:auth-delegator ClusterRole (default: on in-cluster)",
        ),
    ] = None,
    delegation_cache_ttl: Annotated[
        float,
        typer.Option(help="seconds a TokenReview or SubjectAccessReview answer is reused", min=0),
    ] = 10.0,
    capacity: Annotated[
        str,
        typer.Option(
            help="fallback capacity per replica until the predictor serves: "
            "ACCELERATOR=RPS,… (default 1 rps)"
        ),
    ] = "",
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            help="Prometheus holding the pods' vLLM and the gateway's metrics "
            "(e.g. http://prometheus-operated.monitoring.svc:9090); without it no metrics are "
            "read and every pool holds its size"
        ),
    ] = None,
    prometheus_timeout: Annotated[
        float, typer.Option(help="timeout of one Prometheus query, s", min=0.1)
    ] = 5.0,
    predictor_url: Annotated[
        str | None,
        typer.Option(
            help="predictor service answering POST /capacity "
            "(e.g. http://sloscaler-predictor.sloscaler-system.svc:8000); without it (or for an "
            "answer it cannot give) --capacity sizes the pools"
        ),
    ] = None,
    predictor_timeout: Annotated[
        float, typer.Option(help="timeout of one predictor request, s", min=0.05)
    ] = 1.0,
    once: Annotated[
        bool, typer.Option(help="reconcile once (as leader, if elected) and exit")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the in-cluster controller: reconcile every SLOPolicy each tick.

    Only the Lease holder acts; standbys take over when it stops renewing and at once when it
    exits (SIGTERM releases the Lease). Pools are sized from the metrics in --prometheus-url;
    without it (or while Prometheus fails) every pool holds its size (MetricsAvailable=False).
    Capacity per replica comes from the predictor at --predictor-url; without it (or while it
    cannot answer) from --capacity (ModelReady=False).
    """
    import asyncio
    import os
    import socket

    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from prometheus_client import CollectorRegistry

    from autoscaler.clock import WallClock
    from autoscaler.controller_metrics import ControllerMetrics, Health, MetricsServer
    from autoscaler.external_metrics import (
        DesiredReplicasBoard,
        ExternalMetricsServer,
        TLSFiles,
    )
    from autoscaler.k8s.client import KubeCluster
    from autoscaler.k8s.controller import Controller, ControllerConfig
    from autoscaler.k8s.runner import install_stop_signals, run_loop
    from autoscaler.k8s.sources import (
        CapacitySource,
        FixedLatencyModel,
        NoMetricsSource,
        PolicyMetricsSource,
        StaticCapacity,
    )
    from autoscaler.leader import LeaderElector, LeaseConfig

    configure(log_level)
    table = _capacity_table(capacity)
    cfg = k8s_client.Configuration()
    loader: Any = k8s_config  # untyped library functions
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            loader.load_incluster_config(client_configuration=cfg)
        else:
            loader.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None, client_configuration=cfg
            )
    except (k8s_config.ConfigException, OSError) as e:
        raise _fail(f"--kubeconfig: {e}") from None
    who = identity or os.environ.get("POD_NAME") or socket.gethostname()
    clock = WallClock()
    api = k8s_client.ApiClient(cfg)
    cluster = KubeCluster(api)
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    health = Health(clock, stale_after_s=max(120.0, 4 * tick))
    board = DesiredReplicasBoard(clock, stale_after_s=8 * tick)
    metrics_source: PolicyMetricsSource = NoMetricsSource()
    if prometheus_url:
        from autoscaler.prometheus_source import HttpPrometheusClient, PrometheusMetricsSource

        metrics_source = PrometheusMetricsSource(
            HttpPrometheusClient(prometheus_url, timeout_s=prometheus_timeout),
            on_fault=metrics.metrics_source_fault,
        )
    capacity_source: CapacitySource = StaticCapacity(FixedLatencyModel(table))
    if predictor_url:
        from autoscaler.predictor_capacity import HttpPredictorClient, PredictorCapacitySource

        capacity_source = PredictorCapacitySource(
            HttpPredictorClient(predictor_url, timeout_s=predictor_timeout),
            FixedLatencyModel(table),
            clock,
            on_fault=metrics.capacity_source_fault,
        )
    controller = Controller(
        cluster,
        metrics_source,
        capacity_source,
        clock,
        board=board,
        config=ControllerConfig(tick_s=tick, namespace=namespace, identity=who),
        sink=metrics,
    )
    elector = (
        LeaderElector(cluster, clock, LeaseConfig(lease_namespace, who)) if leader_elect else None
    )
    if once:
        if elector is not None and not elector.try_acquire_or_renew():
            raise _fail("another replica holds the leader Lease", code=1)
        report = controller.tick()
        if elector is not None:
            elector.release()
        sys.stdout.write(
            json.dumps(
                {
                    "policies": report.policies,
                    "invalid": report.invalid,
                    "scale_writes": report.scale_writes,
                    "status_writes": report.status_writes,
                    "events": report.events,
                    "errors": report.errors,
                }
            )
            + "\n"
        )
        return
    servers: list[Any] = [MetricsServer(registry, health, port=metrics_port).start()]
    if requestheader_client_ca is not None:
        if (tls_cert is None) != (tls_key is None):
            raise _fail("--tls-cert and --tls-key go together")
        if tls_cert is None or tls_key is None:
            import tempfile

            from autoscaler.k8s.certs import self_signed_serving

            names = (who, "localhost", "127.0.0.1")
            _ca, serving = self_signed_serving(Path(tempfile.mkdtemp()), names, clock.now())
            tls_cert, tls_key = serving.cert, serving.key
        allowed = tuple(n.strip() for n in requestheader_allowed_names.split(",") if n.strip())
        in_cluster = kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        reviewer = None
        if in_cluster if authentication_delegation is None else authentication_delegation:
            from autoscaler.k8s.reviews import CachingReviewer, KubeReviewer

            reviews_api = k8s_client.ApiClient(cfg)  # its own pool: server threads, not the tick
            reviewer = CachingReviewer(KubeReviewer(reviews_api), clock, delegation_cache_ttl)
        servers.append(
            ExternalMetricsServer(
                board,
                TLSFiles(tls_cert, tls_key, requestheader_client_ca),
                port=external_metrics_port,
                allowed_names=allowed,
                reviewer=reviewer,
            ).start()
        )

    def reconcile() -> None:
        report = controller.tick()
        health.beat(ok=not report.errors.get("transient"))

    def round_done(leading: bool) -> None:
        metrics.set_leader(leading)
        if not leading:
            health.beat()

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_loop(reconcile, clock, tick, stop, elector, on_round=round_done)

    try:
        asyncio.run(main())
    finally:
        for server in servers:
            server.stop()


@app.command()
def bench(
    scenarios: Annotated[
        str | None,
        typer.Option(help="comma-separated scenario names or YAML files (default: every bundled)"),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(
            help="comma-separated policies (default: every baseline and slo, plus slo@<pool> "
            "for heterogeneous scenarios); the oracle's floor is always computed"
        ),
    ] = None,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "1,2,3",
    out: Annotated[
        Path, typer.Option(help="directory for results.json, results.csv and report.html")
    ] = Path("bench-out"),
    workers: Annotated[
        int | None, typer.Option(help="parallel processes (default: CPU cores)", min=1)
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="replay only arrivals in the first S seconds", min=1)
    ] = None,
) -> None:
    """Run every policy on every scenario and seed against the oracle's floor on GPU-hours.

    Writes results.json (every run's simulate summary, the oracle floors, the acceptance
    checks), results.csv and a self-contained report.html. Runs are reproducible from seeds.
    """
    import time as _time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from autoscaler import bench as bench_mod

    configure("warning")
    try:
        names = scenarios.split(",") if scenarios else bench_mod.default_scenarios()
        names = [n.strip() for n in names if n.strip()]
        chosen = [p.strip() for p in policies.split(",") if p.strip()] if policies else None
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
        if not seed_list:
            raise ValueError("--seeds: give at least one seed")
        for n in names:
            load_scenario(n)
        if chosen is not None:
            bench_mod.validate_policies(chosen, names)
        tasks = bench_mod.plan_tasks(names, chosen, seed_list, duration)
    except (ScenarioError, TraceFormatError, ValueError) as e:
        raise _fail(str(e)) from None
    n_workers = min(workers or os.cpu_count() or 1, len(tasks))
    meta = bench_mod.bench_meta(names, chosen, seed_list, n_workers)
    progress = Progress(
        TextColumn("bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
    )
    job = progress.add_task("", total=len(tasks))
    failed: list[str] = []

    def done(result: dict[str, Any]) -> None:
        t = result["task"]
        label = f"{t.scenario} · {t.policy} · seed {t.seed}"
        if "error" in result:
            failed.append(f"{label}: {result['error']}")
        progress.update(job, advance=1, description=label)
        if not err.is_terminal:  # no live bar in a log: one line per finished run
            err.print(f"done {label} ({result.get('seconds', 0):.0f} s)", highlight=False)

    t0 = _time.perf_counter()
    with progress:
        results = bench_mod.run_bench(tasks, n_workers, done)
    meta["wall_seconds"] = round(_time.perf_counter() - t0, 1)
    doc = bench_mod.write_outputs(out, results, meta)
    t = Table(
        title=f"bench: {len(tasks)} runs in {meta['wall_seconds']:.0f} s on {n_workers} processes"
    )
    for col in ("scenario", "slo attainment", "slo GPU-h", "× oracle", "beats", "does not beat"):
        t.add_column(col)
    for c in doc["acceptance"]:
        t.add_row(
            c["scenario"],
            f"{c['slo_attainment']:.4f}",
            f"{c['slo_gpu_hours']:.2f}",
            "–" if c["oracle_ratio"] is None else f"{c['oracle_ratio']:.2f}",
            ", ".join(c["beats_baselines_at_target"]) or "–",
            ", ".join(c["does_not_beat"]) or "–",
        )
    Console().print(t)
    Console().print(f"results in {out}/results.json, {out}/results.csv, {out}/report.html")
    if failed:
        for line in failed:
            err.print(f"[bold red]failed:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
