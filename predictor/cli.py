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
* ``serve --model DIR --host 127.0.0.1 --port 8000`` runs the HTTP service
  (:mod:`predictor.service`) on the newest valid version, training more as samples arrive.

A bad file or column ends with one ``error:`` line naming the file, line and column, and exit
status 2; no traceback.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer

from predictor.boosting import BoostingParams
from predictor.clock import WallClock
from predictor.models import Layout, ModelConfig
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
        typer.Option(min=1, help="Trees per booster stage (location, correction, mean)."),
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
    boosting = (
        BoostingParams(location_trees=trees, correction_trees=trees, mean_trees=trees)
        if trees
        else BoostingParams()
    )
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
) -> None:
    """Serve the llm-d compatible prediction API on the newest valid model in DIR."""
    import uvicorn

    from predictor.service import PredictorService, ServiceConfig, create_app

    _logs_to_stderr()
    service = PredictorService(
        ServiceConfig(default_accelerator=accelerator, train_in_process=train_in_process),
        registry=ModelRegistry(model),
        clock=WallClock(),
    )
    artifact, rejected = service.reload()
    for exc in rejected:
        typer.echo(f"warning: {exc}", err=True)
    if artifact is None:
        typer.echo(f"warning: {model}: no model yet; /readyz stays 503 until one trains", err=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
