"""Window models trained by the service itself: the cadence (pure, on a fake clock), one run's
results, the service keeping its model through failures, the background thread, and
``serve --prometheus-url`` (against a Prometheus that is not there; the real one is in
test_predictor_prometheus_integration.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from predictor.cli import predictor_app
from predictor.clock import FixedClock
from predictor.prometheus_dataset import (
    PermanentPrometheusError,
    TemporaryPrometheusError,
    WindowDataset,
)
from predictor.service import PredictorService, ServiceConfig, create_app
from predictor.window_models import WindowModelConfig
from predictor.window_registry import WindowModelRegistry
from predictor.window_training import (
    WindowTrainingPolicy,
    WindowTrainingResult,
    WindowTrainingState,
    next_due_at,
    train_windows,
    training_range,
    window_training_due,
)
from tests.prometheus_harness import free_port
from tests.window_data import h100_pool_windows, window_features

T0 = 1_700_000_000.0
POLICY = WindowTrainingPolicy(every_s=3600.0, lookback_s=21600.0, retry_s=300.0)
FIT = WindowModelConfig(min_rows=50, min_load_levels=5, state_trees=20)
ASK = {"accelerator": "h100", "isl": 1000, "osl": 200, "slo_ttft_ms": 300, "slo_tpot_ms": 1000}


@pytest.mark.parametrize(
    ("policy", "state", "now", "due"),
    [
        (POLICY, WindowTrainingState(), T0, True),  # nothing yet: at once
        (POLICY, WindowTrainingState(T0, True), T0 + 3599.0, False),
        (POLICY, WindowTrainingState(T0, True), T0 + 3600.0, True),  # every_s after a success
        (POLICY, WindowTrainingState(T0, False), T0 + 299.0, False),
        (POLICY, WindowTrainingState(T0, False), T0 + 300.0, True),  # retry_s after a failure
        (WindowTrainingPolicy(every_s=120.0), WindowTrainingState(T0, False), T0 + 120.0, True),
        (WindowTrainingPolicy(every_s=0.0), WindowTrainingState(), T0, False),  # disabled
        (WindowTrainingPolicy(every_s=0.0), WindowTrainingState(T0, True), T0 + 1e9, False),
    ],
)
def test_when_a_training_is_due(
    policy: WindowTrainingPolicy, state: WindowTrainingState, now: float, due: bool
) -> None:
    assert window_training_due(policy, state, now) is due


def test_the_schedule_and_its_range() -> None:
    assert next_due_at(POLICY, WindowTrainingState()) == -math.inf
    assert next_due_at(POLICY, WindowTrainingState(T0, True)) == T0 + 3600.0
    assert next_due_at(WindowTrainingPolicy(every_s=0), WindowTrainingState(T0, True)) is None
    assert training_range(POLICY, T0) == (T0 - 21600.0, T0)
    for bad in ({"every_s": -1.0}, {"lookback_s": 0.0}, {"retry_s": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WindowTrainingPolicy(**bad)


class FakeSource:
    """A window source that answers from memory, or fails the way Prometheus would."""

    def __init__(self, dataset: WindowDataset) -> None:
        self.dataset = dataset
        self.error: Exception | None = None
        self.queries_sent = 0
        self.asked: list[tuple[float, float]] = []

    def fetch(self, start_s: float, end_s: float) -> WindowDataset:
        self.asked.append((start_s, end_s))
        self.queries_sent += 14
        if self.error is not None:
            raise self.error
        return self.dataset


def h100_windows(n: int, seed: int = 2) -> WindowDataset:
    """Windows of toy H100 pods: an M/M/1 prefill queue saturating at 30 req/s."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(1.0, 28.0, n)
    isl, osl = rng.uniform(800, 1200, n), rng.uniform(150, 250, n)
    rho = rate / (30.0 * 1000.0 / isl)
    ttft = 0.03 + np.log(10.0) * isl / 30_000.0 / (1 - np.minimum(rho, 0.98))
    itl = 0.008 * (1 + 1.5 * np.minimum(rho, 0.98))
    running = rate * (ttft + osl * itl)
    features = window_features(
        rate, isl, osl, running=running, waiting=rho**2 / (1 - np.minimum(rho, 0.98)),
        kv_tokens=isl, prefix=np.zeros(n),
    )  # fmt: skip
    return h100_pool_windows(features, ttft, itl, rng)


@pytest.fixture(scope="module")
def data() -> WindowDataset:
    return h100_windows(150)


def test_one_run_ends_in_a_result_and_publishes_only_when_ready(
    tmp_path: Path, data: WindowDataset
) -> None:
    registry = WindowModelRegistry(tmp_path / "w")
    source = FakeSource(data)
    cases = [
        (TemporaryPrometheusError("Prometheus is unreachable"), "prometheus_unavailable"),
        (PermanentPrometheusError("HTTP 400"), "prometheus_rejected"),
    ]
    for error, result in cases:
        source.error = error
        report = train_windows(source, T0 - 600, T0, FIT, registry, T0)
        assert report.result.value == result
    source.error = None
    source.dataset = data.take(data.ttft_s < 0)  # nothing usable
    report = train_windows(source, T0 - 600, T0, FIT, registry, T0)
    assert report.result is WindowTrainingResult.NO_WINDOWS
    assert "no usable windows between 2023-11-14T22:03:20+00:00" in report.message
    source.dataset = data.take(data.window_end_s < 15.0 * 20)  # 20 windows < min_rows
    report = train_windows(source, T0 - 600, T0, FIT, registry, T0)
    assert report.result is WindowTrainingResult.NOT_READY
    assert registry.versions() == []
    source.dataset = data
    report = train_windows(source, T0 - 600, T0, FIT, registry, T0)
    assert report.result is WindowTrainingResult.PUBLISHED
    assert report.message == "1 of 1 segments ready"
    assert registry.versions() == [report.version] == ["v000001"]


def test_the_service_trains_at_start_then_on_its_cadence_and_keeps_its_model_on_failure(
    tmp_path: Path, data: WindowDataset
) -> None:
    clock = FixedClock(T0)
    source = FakeSource(data)
    service = PredictorService(
        ServiceConfig(window_training=POLICY, window_fit=FIT, keep_versions=2),
        window_registry=WindowModelRegistry(tmp_path),
        window_source=source,
        clock=clock,
    )
    assert service.trains_windows
    first = service.maybe_train_windows()  # at start
    assert first is not None
    assert first.published
    assert source.asked == [(T0 - 21600.0, T0)]
    assert service.window_version == "v000001"
    clock.advance(3599.0)
    assert service.maybe_train_windows() is None  # not before every_s
    clock.advance(1.0)
    source.error = TemporaryPrometheusError("Prometheus is unreachable (connection refused)")
    failed = service.maybe_train_windows()
    assert failed is not None
    assert failed.result is WindowTrainingResult.PROMETHEUS_UNAVAILABLE
    assert service.window_version == "v000001"  # the old model keeps serving
    clock.advance(299.0)
    assert service.maybe_train_windows() is None  # a failure retries after retry_s
    clock.advance(1.0)
    source.error = None
    assert service.maybe_train_windows() is not None
    for _ in range(2):
        clock.advance(3600.0)
        assert service.maybe_train_windows() is not None
    assert service.window_version == "v000004"
    assert WindowModelRegistry(tmp_path).versions() == ["v000003", "v000004"]  # pruned

    with TestClient(create_app(service)) as client:  # nothing due: the thread waits
        assert client.post("/capacity", json=ASK).json()["source"] == "learned"
        training = client.get("/status").json()["window_models"]["training"]
        metrics = client.get("/metrics").text
    assert training["enabled"] is True
    assert training["due"] is False
    assert training["counts"]["published"] == 4
    assert training["counts"]["prometheus_unavailable"] == 1
    assert training["last"]["result"] == "published"
    assert training["last"]["window_model_version"] == "v000004"
    assert training["next_due_at"] == "2023-11-15T02:18:20+00:00"  # last run + 3600
    assert 'sloscaler_predictor_window_trainings_total{result="published"} 4.0' in metrics
    assert (
        'sloscaler_predictor_window_trainings_total{result="prometheus_unavailable"} 1.0' in metrics
    )


def test_disabled_or_without_a_source_nothing_trains(tmp_path: Path, data: WindowDataset) -> None:
    source = FakeSource(data)
    off = PredictorService(
        ServiceConfig(window_training=WindowTrainingPolicy(every_s=0)),
        window_registry=WindowModelRegistry(tmp_path),
        window_source=source,
        clock=FixedClock(T0),
    )
    no_source = PredictorService(window_registry=WindowModelRegistry(tmp_path))
    for service in (off, no_source):
        assert not service.trains_windows
        assert service.maybe_train_windows() is None
        service.start_window_training()
        assert service._window_thread is None
        assert service.window_status()["training"]["enabled"] is False
    assert source.asked == []


def test_the_first_run_happens_in_the_background_at_start_up(
    tmp_path: Path, data: WindowDataset
) -> None:
    source = FakeSource(data)
    source.error = TemporaryPrometheusError("Prometheus is unreachable (connection refused)")
    service = PredictorService(
        ServiceConfig(window_training=POLICY, window_fit=FIT),
        window_registry=WindowModelRegistry(tmp_path),
        window_source=source,
        clock=FixedClock(T0),
    )
    with TestClient(create_app(service)) as client:
        assert service.wait_for_window_trainings(1, timeout_s=10.0)
        status = client.get("/status").json()["window_models"]
    assert service._window_thread is None  # stopped with the app
    assert status["version"] is None
    assert status["training"]["last"]["result"] == "prometheus_unavailable"
    assert status["training"]["last"]["range"] == [
        "2023-11-14T16:13:20+00:00",
        "2023-11-14T22:13:20+00:00",
    ]
    assert len(source.asked) == 1  # the next run waits for retry_s on the fake clock


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("_restore_logging")
def test_serve_trains_window_models_from_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --prometheus-url`` starts training with the app; a Prometheus that is not there
    is counted and shown, and /capacity keeps its fallback."""
    import uvicorn

    served: dict[str, object] = {}

    def run(app: object, host: str, port: int, log_level: str) -> None:  # the process boundary
        served.update(app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    profiles = tmp_path / "profiles.json"
    h100 = {"prefill_tokens_per_s": 9000, "itl_base_ms": 10, "itl_per_seq_ms": 0.2}
    profiles.write_text(json.dumps({"h100": {**h100, "kv_capacity_tokens": 1e5}}))
    args = ["serve", "--model", str(tmp_path / "models"), "--windows", str(tmp_path / "w")]
    args += ["--prometheus-url", url, "--train-windows-every", "3600"]
    args += ["--train-windows-lookback", "21600", "--match", "namespace=llm", "--retries", "0"]
    r = CliRunner().invoke(predictor_app, [*args, "--profiles", str(profiles)])
    assert r.exit_code == 0, r.output
    assert "/capacity uses the fallback until one trains" in r.stderr
    app = served["app"]
    service: PredictorService = app.state.service  # type: ignore[attr-defined]
    with TestClient(app) as client:  # type: ignore[arg-type]
        assert service.wait_for_window_trainings(1, timeout_s=10.0)
        assert client.post("/capacity", json=ASK).json()["source"] == "fallback"
        training = client.get("/status").json()["window_models"]["training"]
        metrics = client.get("/metrics").text
    assert training["every_s"] == 3600.0
    assert training["lookback_s"] == 21600.0
    assert training["last"]["result"] == "prometheus_unavailable"
    assert "Prometheus is unreachable" in training["last"]["message"]
    assert 'sloscaler_predictor_window_trainings_total{result="prometheus_unavailable"} 1.0' in (
        metrics
    )
    assert not (tmp_path / "w").exists()

    r = CliRunner().invoke(predictor_app, ["serve", "--model", "m", "--prometheus-url", url])
    assert r.exit_code == 2
    assert "--prometheus-url needs --windows DIR" in r.stderr
