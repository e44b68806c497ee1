"""``sloscaler predictor train|eval|serve``: the offline contract and the service launcher.

Why this module exists: models must be trainable and checkable from files, without a cluster —
by operators bringing their own request logs and by the benchmarks — and the service must start
from the same artifacts. The commands:

* ``train --data FILE.csv --out DIR`` fits models on the CSV (columns: see
  :mod:`predictor.samples`), calibrates and scores them on hashed held-out rows, and publishes a
  new version under ``DIR`` (a registry, see :mod:`predictor.registry`);
* ``eval --model DIR --data FILE.csv --json -`` scores the newest valid version in ``DIR`` (or
  the version directory ``DIR`` itself) on every row of the CSV and prints, per target and
  accelerator (``*`` = all), ``n``, ``coverage_p90``, ``pinball_p90``, ``mape_mean``,
  ``r2_mean``;
* ``train-windows --prometheus-url URL --start T --end T --out DIR`` reads vLLM's metrics
  from Prometheus as (pod, window) rows (:mod:`predictor.prometheus_dataset`), fits window
  models per (accelerator, role) (:mod:`predictor.window_models`) and publishes them as a new
  version under ``DIR`` (a window-model registry, see :mod:`predictor.window_registry`);
* ``serve --model DIR --host 127.0.0.1 --port 8000 [--windows DIR] [--profiles FILE]
  [--prometheus-url URL --train-windows-every S --train-windows-lookback S]`` runs the HTTP
  service (:mod:`predictor.service`) on the newest valid version, training more as samples
  arrive, and answers ``POST /capacity`` from the newest window model (or from the analytic
  profiles in ``FILE`` while none is ready); with ``--prometheus-url`` it also trains the window
  models itself, on a cadence (:mod:`predictor.window_training`).

``train-windows`` and ``serve`` share the options that say what to read from Prometheus and
how to fit (``--window-s``, ``--match``, the label options, ``--min-rows``, …): one set of
option types and one function (:func:`window_training_setup`) turn them into the dataset, fit
and client settings.

A bad file or column ends with one ``error:`` line naming the file, line and column, and exit
status 2; so does an unreachable or refusing Prometheus (saying whether retrying may help); no
traceback.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import structlog
import typer

from predictor.boosting import BoostingParams
from predictor.capacity import AcceleratorProfile
from predictor.clock import Clock, WallClock
from predictor.models import Layout, ModelConfig
from predictor.outcomes import NotReady
from predictor.prometheus_dataset import PrometheusWindowSource, WindowDatasetConfig, connect
from predictor.prometheus_queries import RowLabels, Selector
from predictor.registry import METADATA, Artifact, ArtifactError, ModelRegistry
from predictor.samples import SampleFormatError, read_samples_csv
from predictor.training import (
    TrainingConfig,
    TrainingResult,
    evaluate_model,
    not_ready_summary,
    train,
    train_best_layout,
)
from predictor.window_models import WindowModelConfig
from predictor.window_registry import WindowModelRegistry, dataset_summary
from predictor.window_training import (
    WindowSource,
    WindowTrainingPolicy,
    WindowTrainingResult,
    train_windows,
)

if TYPE_CHECKING:
    from predictor.service import PredictorService

predictor_app = typer.Typer(
    name="predictor",
    help="Train, evaluate and serve the TTFT/TPOT latency models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class LayoutChoice(StrEnum):
    AUTO = "auto"
    PER_SEGMENT = "per_segment"
    POOLED = "pooled"


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def _logs_to_stderr() -> None:
    """Keep stdout for results (``--json -``); log lines go to whatever stderr is now."""
    if not structlog.is_configured():
        structlog.configure(logger_factory=_stderr_logger, cache_logger_on_first_use=False)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"--quantiles: expected comma-separated numbers, got {text!r}")
    if not values or any(not 0 < v < 1 for v in values):
        _fail(f"--quantiles: every quantile must lie in (0, 1), got {text!r}")
    return values


@predictor_app.command("train")
def train_command(
    data: Annotated[Path, typer.Option("--data", help="CSV of request samples.")],
    out: Annotated[Path, typer.Option("--out", help="Registry directory to publish into.")],
    layout: Annotated[
        LayoutChoice,
        typer.Option(help="per_segment, pooled, or auto (fit both, keep the better)."),
    ] = LayoutChoice.AUTO,
    quantiles: Annotated[str, typer.Option(help="Quantiles to fit, comma-separated.")] = "0.5,0.9",
    serving_quantile: Annotated[
        float, typer.Option(help="Quantile returned as ttft_ms/tpot_ms.")
    ] = 0.9,
    min_samples: Annotated[
        int, typer.Option(min=1, help="Fewest samples a segment needs to get a model.")
    ] = 200,
    trees: Annotated[
        int | None,
        typer.Option(min=1, help="Trees per booster (location, mean)."),
    ] = None,
) -> None:
    """Fit, calibrate and score models on FILE.csv; publish them as a new version in DIR."""
    _logs_to_stderr()
    qs = _quantiles(quantiles)
    if serving_quantile not in qs:
        _fail(f"--serving-quantile {serving_quantile} is not among --quantiles {quantiles}")
    try:
        samples = read_samples_csv(data)
    except SampleFormatError as exc:
        _fail(str(exc))
    if len(samples) == 0:
        _fail(f"{data}: no rows")
    boosting = BoostingParams(location_trees=trees, mean_trees=trees) if trees else BoostingParams()
    model = ModelConfig(
        quantiles=qs,
        serving_quantile=serving_quantile,
        layout=Layout.PER_SEGMENT if layout is LayoutChoice.AUTO else Layout(layout.value),
        boosting=boosting,
        min_samples=min_samples,
    )
    config = TrainingConfig(model=model)
    now = WallClock().now()
    result: TrainingResult
    if layout is LayoutChoice.AUTO:
        result, scores = train_best_layout(samples, config, now)
        choice = ", ".join(f"{k.value} {v:.3f}" for k, v in scores.items())
        typer.echo(f"layout scores (lower is better): {choice}", err=True)
    else:
        result = train(samples, config, now)
    if not result.model.is_ready:
        reasons = "; ".join(p.message for p in not_ready_summary(result.model))
        _fail(f"{data}: no segment could be trained ({reasons})")
    try:
        version = ModelRegistry(out).publish(result)
    except OSError as exc:
        _fail(f"{out}: cannot write the model ({exc.strerror})")
    summary: dict[str, Any] = {
        "version": version,
        "out": str(out),
        "layout": result.model.config.layout.value,
        "rows": result.rows,
        "held_out": [m.to_json() for m in result.metrics if m.accelerator == "*"],
        "not_ready": [p.message for p in not_ready_summary(result.model)],
    }
    typer.echo(json.dumps(summary, indent=2))


def _load(model: Path) -> Artifact:
    if (model / METADATA).is_file():
        registry, version = ModelRegistry(model.parent), model.name
        try:
            return registry.load(version)
        except ArtifactError as exc:
            _fail(str(exc))
    artifact, rejected = ModelRegistry(model).load_latest()
    if artifact is None:
        why = f" ({rejected[0]})" if rejected else ""
        _fail(f"{model}: no usable model artifact{why}")
    return artifact


@predictor_app.command("eval")
def eval_command(
    model: Annotated[Path, typer.Option("--model", help="Registry or version directory.")],
    data: Annotated[Path, typer.Option("--data", help="CSV of request samples.")],
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write JSON to this file ('-' = stdout).")
    ] = None,
) -> None:
    """Score a model on FILE.csv: n, coverage_p90, pinball_p90, mape_mean, r2_mean."""
    _logs_to_stderr()
    artifact = _load(model)
    try:
        samples = read_samples_csv(data)
    except SampleFormatError as exc:
        _fail(str(exc))
    metrics = evaluate_model(artifact.model, samples)
    by_target: dict[str, dict[str, Any]] = {}
    for m in metrics:
        row = m.to_json()
        target, accelerator = row.pop("target"), row.pop("accelerator")
        by_target.setdefault(target, {})[accelerator] = row
    report = {"model": artifact.version, "data": str(data), "metrics": by_target}
    text = json.dumps(report, indent=2)
    if json_out == "-":
        typer.echo(text)
        return
    if json_out is not None:
        try:
            Path(json_out).write_text(text + "\n")
        except OSError as exc:
            _fail(f"{json_out}: cannot write ({exc.strerror})")
    typer.echo(f"model {artifact.version} on {data}")
    typer.echo(
        f"{'target':6} {'accelerator':12} {'n':>8} {'cov_p90':>8} {'pinball':>10} "
        f"{'mape':>7} {'r2':>7}"
    )
    for m in metrics:
        typer.echo(
            f"{m.target.value:6} {m.accelerator:12} {m.n:8d} {m.coverage_p90:8.3f} "
            f"{m.pinball_p90:10.3f} {m.mape_mean:7.3f} {m.r2_mean:7.3f}"
        )


# ------------------------------------------------- options shared by serve and train-windows

WindowSOption = Annotated[float, typer.Option("--window-s", help="PromQL range of every rate (s).")]
StepSOption = Annotated[float, typer.Option("--step-s", help="Spacing of window ends (s).")]
MatchOption = Annotated[
    list[str] | None, typer.Option("--match", help="Label matcher LABEL=VALUE (repeatable).")
]
MatchRegexOption = Annotated[
    list[str] | None,
    typer.Option("--match-regex", help="Label matcher LABEL=REGEX (repeatable)."),
]
PodLabelOption = Annotated[str, typer.Option(help="Label naming the pod.")]
AcceleratorLabelOption = Annotated[
    str, typer.Option(help="Label carrying the accelerator ('' if none).")
]
RoleLabelOption = Annotated[str, typer.Option(help="Label carrying the role ('' if none).")]
DefaultAcceleratorOption = Annotated[
    str | None, typer.Option(help="Accelerator of pods without the label.")
]
MinRowsOption = Annotated[
    int, typer.Option(min=1, help="Fewest windows an (accelerator, role) needs.")
]
MinLoadLevelsOption = Annotated[
    int, typer.Option(min=2, help="Fewest distinct request rates it needs.")
]
TimeoutSOption = Annotated[float, typer.Option(help="Per-query timeout (s).")]
RetriesOption = Annotated[int, typer.Option(min=0, help="Client retries per query.")]


@dataclass(frozen=True)
class WindowTrainingSetup:
    """What ``serve`` and ``train-windows`` read from Prometheus and how they fit."""

    source: PrometheusWindowSource
    fit: WindowModelConfig


def window_training_setup(
    prometheus_url: str,
    *,
    window_s: float,
    step_s: float,
    match: list[str] | None,
    match_regex: list[str] | None,
    pod_label: str,
    accelerator_label: str,
    role_label: str,
    default_accelerator: str | None,
    min_rows: int,
    min_load_levels: int,
    timeout_s: float,
    retries: int,
) -> WindowTrainingSetup:
    """The window source and fit settings from the shared options (``error:`` and exit 2 on a
    bad one)."""
    try:
        config = WindowDatasetConfig(
            selector=Selector(
                _matchers(match or [], "--match"), _matchers(match_regex or [], "--match-regex")
            ),
            labels=RowLabels(
                pod=pod_label, accelerator=accelerator_label or None, role=role_label or None
            ),
            window_s=window_s,
            step_s=step_s,
            default_accelerator=default_accelerator,
        )
        fit = WindowModelConfig(min_rows=min_rows, min_load_levels=min_load_levels)
    except ValueError as exc:
        _fail(str(exc))
    client = connect(prometheus_url, timeout_s=timeout_s, retries=retries)
    return WindowTrainingSetup(PrometheusWindowSource(client, config), fit)


@predictor_app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Option("--model", help="Registry directory (created if new).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    accelerator: Annotated[
        str | None, typer.Option(help="Accelerator assumed when a request names none.")
    ] = None,
    train_in_process: Annotated[
        bool, typer.Option("--train/--no-train", help="Retrain from posted samples.")
    ] = True,
    windows: Annotated[
        Path | None,
        typer.Option("--windows", help="Window-model registry for POST /capacity."),
    ] = None,
    profiles: Annotated[
        Path | None,
        typer.Option(
            "--profiles",
            help="JSON {accelerator: profile} for the analytic capacity fallback.",
        ),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="Prometheus to train window models from, into --windows (needs it).",
        ),
    ] = None,
    train_windows_every: Annotated[
        float,
        typer.Option(
            "--train-windows-every",
            min=0,
            help="Seconds between window-model trainings (0 = never; the first at start).",
        ),
    ] = 3600.0,
    train_windows_lookback: Annotated[
        float,
        typer.Option(
            "--train-windows-lookback",
            min=1,
            help="Seconds of Prometheus history each training reads.",
        ),
    ] = 21600.0,
    window_s: WindowSOption = 60.0,
    step_s: StepSOption = 60.0,
    match: MatchOption = None,
    match_regex: MatchRegexOption = None,
    pod_label: PodLabelOption = "pod",
    accelerator_label: AcceleratorLabelOption = "accelerator",
    role_label: RoleLabelOption = "role",
    default_accelerator: DefaultAcceleratorOption = None,
    min_rows: MinRowsOption = 100,
    min_load_levels: MinLoadLevelsOption = 10,
    timeout_s: TimeoutSOption = 30.0,
    retries: RetriesOption = 2,
) -> None:
    """Serve the llm-d compatible prediction API on the newest valid model in DIR."""
    import uvicorn

    from predictor.service import create_app

    _logs_to_stderr()
    setup = None
    if prometheus_url is not None:
        if windows is None:
            _fail("--prometheus-url needs --windows DIR to publish window models into")
        setup = window_training_setup(
            prometheus_url,
            window_s=window_s,
            step_s=step_s,
            match=match,
            match_regex=match_regex,
            pod_label=pod_label,
            accelerator_label=accelerator_label,
            role_label=role_label,
            default_accelerator=default_accelerator,
            min_rows=min_rows,
            min_load_levels=min_load_levels,
            timeout_s=timeout_s,
            retries=retries,
        )
    service = build_service(
        model,
        accelerator,
        train_in_process,
        windows,
        profiles,
        window_source=None if setup is None else setup.source,
        window_training=WindowTrainingPolicy(
            every_s=train_windows_every, lookback_s=train_windows_lookback
        ),
        window_fit=None if setup is None else setup.fit,
    )
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")


def read_profiles(path: Path) -> dict[str, AcceleratorProfile]:
    """``{accelerator: {prefill_tokens_per_s, itl_base_ms, …}}`` from a JSON file."""
    from pydantic import ValidationError

    from predictor.service import ProfilePayload

    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        _fail(f"{path}: cannot read ({exc.strerror})")
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})")
    if not isinstance(raw, dict):
        _fail(f"{path}: expected an object of accelerator → profile")
    out: dict[str, AcceleratorProfile] = {}
    for name, body in raw.items():
        try:
            out[str(name)] = ProfilePayload.model_validate(body).profile(str(name))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            _fail(f"{path}: {name}.{where}: {first['msg']}")
    return out


def build_service(
    model: Path,
    accelerator: str | None = None,
    train_in_process: bool = True,
    windows: Path | None = None,
    profiles: Path | None = None,
    *,
    window_source: WindowSource | None = None,
    window_training: WindowTrainingPolicy | None = None,
    window_fit: WindowModelConfig | None = None,
    clock: Clock | None = None,
) -> PredictorService:
    """The service ``serve`` runs, with its models loaded (warnings on stderr); with a
    ``window_source`` and ``windows`` it trains window models on ``window_training``'s cadence
    once its app starts."""
    from predictor.service import PredictorService, ServiceConfig

    service = PredictorService(
        ServiceConfig(
            default_accelerator=accelerator,
            train_in_process=train_in_process,
            profiles=read_profiles(profiles) if profiles is not None else {},
            window_training=window_training or WindowTrainingPolicy(),
            window_fit=window_fit or WindowModelConfig(),
        ),
        registry=ModelRegistry(model),
        window_registry=WindowModelRegistry(windows) if windows is not None else None,
        window_source=window_source,
        clock=clock or WallClock(),
    )
    artifact, rejected = service.reload()
    for exc in rejected:
        typer.echo(f"warning: {exc}", err=True)
    if artifact is None:
        typer.echo(f"warning: {model}: no model yet; /readyz stays 503 until one trains", err=True)
    if windows is not None:
        window_artifact, window_rejected = service.reload_windows()
        for exc in window_rejected:
            typer.echo(f"warning: {exc}", err=True)
        if window_artifact is None:
            later = " until one trains" if service.trains_windows else ""
            typer.echo(
                f"warning: {windows}: no window model; /capacity uses the fallback{later}",
                err=True,
            )
    return service


def _epoch(text: str, option: str) -> float:
    """Epoch seconds from a number or an ISO-8601 time (UTC when it names no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option}: expected epoch seconds or an ISO-8601 time, got {text!r}")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _matchers(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _fail(f"{option}: expected LABEL=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


@predictor_app.command("train-windows")
def train_windows_command(
    prometheus_url: Annotated[str, typer.Option("--prometheus-url", help="Prometheus base URL.")],
    start: Annotated[
        str, typer.Option("--start", help="First window end: epoch seconds or ISO-8601.")
    ],
    end: Annotated[str, typer.Option("--end", help="Last window end: epoch seconds or ISO-8601.")],
    out: Annotated[Path, typer.Option("--out", help="Window-model registry to publish into.")],
    window_s: WindowSOption = 60.0,
    step_s: StepSOption = 60.0,
    match: MatchOption = None,
    match_regex: MatchRegexOption = None,
    pod_label: PodLabelOption = "pod",
    accelerator_label: AcceleratorLabelOption = "accelerator",
    role_label: RoleLabelOption = "role",
    default_accelerator: DefaultAcceleratorOption = None,
    min_rows: MinRowsOption = 100,
    min_load_levels: MinLoadLevelsOption = 10,
    timeout_s: TimeoutSOption = 30.0,
    retries: RetriesOption = 2,
) -> None:
    """Read vLLM metrics from Prometheus, fit window models, publish them as a version in DIR."""
    _logs_to_stderr()
    start_s, end_s = _epoch(start, "--start"), _epoch(end, "--end")
    if end_s < start_s:
        _fail("--end is before --start")
    setup = window_training_setup(
        prometheus_url,
        window_s=window_s,
        step_s=step_s,
        match=match,
        match_regex=match_regex,
        pod_label=pod_label,
        accelerator_label=accelerator_label,
        role_label=role_label,
        default_accelerator=default_accelerator,
        min_rows=min_rows,
        min_load_levels=min_load_levels,
        timeout_s=timeout_s,
        retries=retries,
    )
    report = train_windows(
        setup.source, start_s, end_s, setup.fit, WindowModelRegistry(out), WallClock().now()
    )
    if report.result in _READ_FAILURES:
        _fail(f"{prometheus_url}: {report.message}")
    if not report.published or report.model is None or report.dataset is None:
        _fail(report.message)
    segments: dict[str, Any] = {}
    for (acc, role), seg in report.model.segments.items():
        segments[f"{acc}/{role}"] = (
            {"ready": False, "reason": seg.reason.value, "message": seg.message}
            if isinstance(seg, NotReady)
            else {"ready": True, "windows": seg.n_rows, "rate_range": list(seg.rate_range)}
        )
    typer.echo(report.message, err=True)
    summary = {
        "version": report.version,
        "out": str(out),
        "queries": setup.source.queries_sent,
        "dataset": dataset_summary(report.dataset),
        "segments": segments,
    }
    typer.echo(json.dumps(summary, indent=2))


#: results that say what Prometheus answered (their message gets its URL in front)
_READ_FAILURES = frozenset(
    {
        WindowTrainingResult.PROMETHEUS_UNAVAILABLE,
        WindowTrainingResult.PROMETHEUS_REJECTED,
        WindowTrainingResult.NO_WINDOWS,
    }
)
