"""Window models on synthetic windows with a known truth: fitting, monotonicity, NotReady,
capacity by bisection; as artifacts (round trip, refusals); and behind ``POST /capacity`` (the
learned → fallback → not-ready ladder of the service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from predictor.clock import FixedClock
from predictor.outcomes import NotReady, NotReadyReason
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WINDOW_FEATURES, WindowField
from predictor.registry import ArtifactError, ModelRegistry
from predictor.service import PredictorService, ServiceConfig, create_app
from predictor.training import TrainingResult
from predictor.window_models import (
    CapacityBound,
    WindowCapacity,
    WindowLatencyModel,
    WindowModelConfig,
    WindowSegment,
    capacity_at_slo,
    evaluate_window_model,
    fit_window_model,
)
from predictor.window_registry import WindowModelRegistry
from tests.window_data import window_features

F = WindowField
SATURATION = {"h100": 30.0, "a100": 15.0}  # req/s per pod at ISL 1000 (toy M/M/1 pods)


def _truth(
    acc: str, rate: np.ndarray, isl: np.ndarray, prefix: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Utilisation, p90 TTFT (s) and p90 ITL (s) of a toy pod: an M/M/1 prefill queue."""
    mu = SATURATION[acc] * 1000.0 / np.maximum(isl * (1 - 0.5 * prefix), 1.0)
    rho = np.minimum(rate / mu, 0.98)
    ttft = 0.03 + np.log(10.0) / (mu * (1 - rho))
    itl = (0.008 if acc == "h100" else 0.014) * (1 + 1.5 * rho)
    return rho, ttft, itl


def windows(
    n_per_acc: int, seed: int = 0, accs: tuple[str, ...] = ("h100", "a100")
) -> WindowDataset:
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {f.value: [] for f in WINDOW_FEATURES}
    ttft_all, itl_all, acc_all = [], [], []
    for acc in accs:
        n = n_per_acc
        rate = rng.uniform(0.05, 0.95, n) * SATURATION[acc]
        isl = rng.uniform(800, 1200, n)
        osl = rng.uniform(150, 250, n)
        prefix = rng.uniform(0, 0.3, n)
        rho, ttft, itl = _truth(acc, rate, isl, prefix)
        running = rate * (ttft + osl * itl)
        cols = window_features(
            rate, isl, osl, running=running, waiting=rho**2 / (1 - rho),
            kv_tokens=isl + osl / 2, prefix=prefix,
        )  # fmt: skip
        for name, values in cols.items():
            parts[name].append(values)
        ttft_all.append(ttft * rng.lognormal(0, 0.05, n))
        itl_all.append(itl * rng.lognormal(0, 0.03, n))
        acc_all += [acc] * n
    n_total = len(acc_all)
    return WindowDataset(
        pod=tuple(f"{a}-{i % 4}" for i, a in enumerate(acc_all)),
        accelerator=tuple(acc_all),
        role=("aggregated",) * n_total,
        window_end_s=np.arange(n_total, dtype=np.float64) * 15.0,
        features={k: np.concatenate(v) for k, v in parts.items()},
        ttft_s=np.concatenate(ttft_all),
        itl_s=np.concatenate(itl_all),
        window_s=60.0,
    )


@pytest.fixture(scope="module")
def model() -> WindowLatencyModel:
    return fit_window_model(windows(600, seed=1))


def test_every_segment_is_ready_and_accurate(model: WindowLatencyModel) -> None:
    assert model.is_ready
    for acc in ("h100", "a100"):
        assert isinstance(model.segment(acc), WindowSegment)
    for acc_row in evaluate_window_model(model, windows(300, seed=2)):
        assert acc_row.n == 300
        assert acc_row.mape < 0.15, acc_row
        assert 0.8 <= acc_row.coverage_q90 <= 0.98, acc_row  # calibrated on 120 windows


def test_predicted_latency_never_falls_as_the_rate_rises(model: WindowLatencyModel) -> None:
    for acc in ("h100", "a100"):
        seg = model.segment(acc)
        assert isinstance(seg, WindowSegment)
        rates = np.linspace(0.0, seg.rate_range[1], 60)
        for q in (0.5, 0.9):
            points = [seg.point(float(r), 1000.0, 200.0, 0.1, q) for r in rates]
            for name in ("ttft_s", "itl_s", "num_requests_running", "kv_cache_usage"):
                series = np.array([getattr(p, name) for p in points])
                assert np.all(np.diff(series) >= -1e-12), (acc, q, name)


def test_capacity_is_found_by_bisection_near_the_true_boundary(model: WindowLatencyModel) -> None:
    slo_ttft = 0.3
    result = capacity_at_slo(model, 1000, 200, 0.1, slo_ttft, 1.0, accelerator="h100")
    assert isinstance(result, WindowCapacity)
    assert result.limited_by is CapacityBound.TTFT
    rates = np.linspace(0.1, 29.0, 20_000)
    _, ttft, _ = _truth("h100", rates, np.full_like(rates, 1000.0), np.full_like(rates, 0.1))
    true_capacity = rates[ttft <= slo_ttft].max()
    assert result.rate_rps == pytest.approx(true_capacity, rel=0.1)
    assert result.at_capacity.ttft_s <= slo_ttft
    tighter = capacity_at_slo(
        model, 1000, 200, 0.1, slo_ttft, 1.0, accelerator="h100", quantile=0.9
    )
    assert isinstance(tighter, WindowCapacity)
    assert tighter.rate_rps <= result.rate_rps


def test_capacity_edges_and_refusals(model: WindowLatencyModel) -> None:
    loose = capacity_at_slo(model, 1000, 200, 0.1, 100.0, 100.0, accelerator="a100")
    seg = model.segment("a100")
    assert isinstance(loose, WindowCapacity)
    assert isinstance(seg, WindowSegment)
    assert loose.limited_by is CapacityBound.OBSERVED_RANGE
    assert loose.rate_rps == seg.rate_range[1]
    impossible = capacity_at_slo(model, 1000, 200, 0.1, 0.001, 1.0, accelerator="a100")
    assert isinstance(impossible, WindowCapacity)
    assert impossible.rate_rps == 0.0
    itl_bound = capacity_at_slo(model, 1000, 200, 0.1, 100.0, 0.0185, accelerator="a100")
    assert isinstance(itl_bound, WindowCapacity)
    assert itl_bound.limited_by is CapacityBound.ITL
    unknown = capacity_at_slo(model, 1000, 200, 0.1, 1.0, 1.0, accelerator="l40s")
    assert isinstance(unknown, NotReady)
    assert unknown.reason is NotReadyReason.UNKNOWN_SEGMENT
    bad = capacity_at_slo(model, 1000, 0, 0.1, 1.0, 1.0, accelerator="h100")
    assert isinstance(bad, NotReady)
    assert bad.reason is NotReadyReason.INVALID_INPUT
    no_q = capacity_at_slo(model, 1000, 200, 0.1, 1.0, 1.0, accelerator="h100", quantile=0.99)
    assert isinstance(no_q, NotReady)
    assert no_q.reason is NotReadyReason.NO_MODEL


def test_too_few_windows_or_a_constant_load_is_not_ready() -> None:
    few = fit_window_model(windows(40, seed=3), WindowModelConfig(min_rows=100))
    seg = few.segment("h100")
    assert isinstance(seg, NotReady)
    assert seg.reason is NotReadyReason.TOO_FEW_SAMPLES
    assert not few.is_ready
    ds = windows(200, seed=4, accs=("h100",))
    flat = dict(ds.features)
    flat[F.REQUEST_RATE.value] = np.full(len(ds), 5.0)
    constant = WindowDataset(
        pod=ds.pod,
        accelerator=ds.accelerator,
        role=ds.role,
        window_end_s=ds.window_end_s,
        features=flat,
        ttft_s=ds.ttft_s,
        itl_s=ds.itl_s,
        window_s=ds.window_s,
    )
    seg = fit_window_model(constant).segment("h100")
    assert isinstance(seg, NotReady)
    assert "distinct request rates" in seg.message


def test_a_fit_that_breaks_monotonicity_is_not_ready() -> None:
    from predictor.boosting import BoostingParams

    ds = windows(400, seed=5, accs=("h100",))
    backwards = WindowDataset(
        pod=ds.pod,
        accelerator=ds.accelerator,
        role=ds.role,
        window_end_s=ds.window_end_s,
        features=ds.features,
        ttft_s=1.0 / ds.feature(F.REQUEST_RATE),  # latency falling with load
        itl_s=ds.itl_s,
        window_s=ds.window_s,
    )
    config = WindowModelConfig(boosting=BoostingParams(monotone=False, num_leaves=15))
    seg = fit_window_model(backwards, config).segment("h100")
    assert isinstance(seg, NotReady)
    assert seg.reason is NotReadyReason.NOT_MONOTONE
    assert "break monotonicity" in seg.message


# ---------------------------------------------------------------------- artifacts and service

PROFILE: dict[str, Any] = {
    "prefill_tokens_per_s": 7_000.0,
    "itl_base_ms": 14.0,
    "itl_per_seq_ms": 0.3,
    "kv_capacity_tokens": 120_000.0,
    "max_num_seqs": 64,
}
ASK: dict[str, Any] = {
    "isl": 1000,
    "osl": 200,
    "prefix_hit": 0.1,
    "slo_ttft_ms": 300,
    "slo_tpot_ms": 1000,
}


@pytest.fixture(scope="module")
def trained_windows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WindowLatencyModel]:
    data = windows(300, seed=1)
    model = fit_window_model(data)
    root = tmp_path_factory.mktemp("windows")
    assert WindowModelRegistry(root).publish(model, data, created_at=1_700_000_000.0) == "v000001"
    return root, model


def test_a_published_window_model_loads_with_the_same_answers(
    trained_windows: tuple[Path, WindowLatencyModel],
) -> None:
    root, model = trained_windows
    artifact = WindowModelRegistry(root).load("v000001")
    assert artifact.dataset["rows"] == 600
    assert artifact.dataset["segments"] == {"a100/aggregated": 300, "h100/aggregated": 300}
    for acc in ("h100", "a100"):
        for quantile in (0.5, 0.9):
            ask = (1000, 200, 0.1, 0.3, 1.0)
            before = capacity_at_slo(model, *ask, accelerator=acc, quantile=quantile)
            after = capacity_at_slo(artifact.model, *ask, accelerator=acc, quantile=quantile)
            assert isinstance(before, WindowCapacity)
            assert after == before


def test_a_corrupt_window_artifact_is_refused_and_the_previous_serves(
    tmp_path: Path, trained_windows: tuple[Path, WindowLatencyModel]
) -> None:
    _, model = trained_windows
    registry = WindowModelRegistry(tmp_path)
    data = windows(300, seed=1)
    registry.publish(model, data, created_at=0.0)
    second = registry.publish(model, data, created_at=1.0)
    state_file = sorted((tmp_path / second).glob("h100-aggregated.state.*.txt"))[0]
    state_file.write_text(state_file.read_text().replace("leaf_value=", "leaf_value=9", 1))
    artifact, rejected = registry.load_latest()
    assert artifact is not None
    assert artifact.version == "v000001"
    assert [e.version for e in rejected] == [second]
    assert "checksum mismatch" in rejected[0].reason


def test_request_level_and_window_registries_refuse_each_other(
    tmp_path: Path, trained: TrainingResult, trained_windows: tuple[Path, WindowLatencyModel]
) -> None:
    root, _ = trained_windows
    with pytest.raises(ArtifactError, match="format is 'sloscaler-window-model-artifact/1'"):
        ModelRegistry(root).load("v000001")
    version = ModelRegistry(tmp_path).publish(trained)
    with pytest.raises(ArtifactError, match="this version reads 'sloscaler-window-model"):
        WindowModelRegistry(tmp_path).load(version)


@pytest.fixture
def client(
    trained: TrainingResult, trained_windows: tuple[Path, WindowLatencyModel]
) -> Iterator[TestClient]:
    root, _ = trained_windows
    service = PredictorService(
        ServiceConfig(profiles={}),
        window_registry=WindowModelRegistry(root),
        clock=FixedClock(1_700_000_000.0),
    )
    service.install(trained.model, "v000003", trained.metrics)  # knows H100, A100, L40S
    with TestClient(create_app(service)) as c:
        assert c.post("/reload").json()["window_model_version"] == "v000001"
        yield c


def test_capacity_from_the_window_model(client: TestClient) -> None:
    answer = client.post("/capacity", json={**ASK, "accelerator": "h100"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["source"] == "learned"
    assert body["not_ready"] is None
    assert body["window_model_version"] == "v000001"
    assert body["limited_by"] == "ttft"
    assert 5.0 < body["rate_rps"] < 29.0  # the toy pod saturates at 30 req/s
    assert body["at_capacity"]["ttft_ms"] <= 300.0
    cautious = client.post("/capacity", json={**ASK, "accelerator": "h100", "quantile": 0.9})
    assert cautious.json()["rate_rps"] <= body["rate_rps"]


def test_capacity_falls_back_with_the_reason(client: TestClient) -> None:
    # no window model for L40S: the request-level model answers through the queueing model
    answer = client.post("/capacity", json={**ASK, "accelerator": "L40S", "profile": PROFILE})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["source"] == "fallback"
    assert body["fallback_model"] == "request_level"
    assert body["not_ready"]["reason"] == "UnknownSegment"
    assert body["rate_rps"] > 0
    # an accelerator no model knows: the analytic profile answers alone
    analytic = client.post("/capacity", json={**ASK, "accelerator": "TPU", "profile": PROFILE})
    assert analytic.json()["fallback_model"] == "analytic"


def test_capacity_without_a_model_or_profile_is_503(client: TestClient) -> None:
    answer = client.post("/capacity", json={**ASK, "accelerator": "TPU"})
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail["reason"] == "UnknownSegment"
    assert "no profile for 'TPU'" in detail["message"]
    bad = client.post("/capacity", json={**ASK, "accelerator": "h100", "osl": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "osl"]
    status = client.get("/status").json()["window_models"]
    assert status["version"] == "v000001"
    assert status["segments"] == {"a100/aggregated": "ready", "h100/aggregated": "ready"}
    text = client.get("/metrics").text
    assert (
        'sloscaler_predictor_window_model_ready{accelerator="h100",role="aggregated"} 1.0' in text
    )
    assert 'sloscaler_predictor_capacity_answers_total{source="not_ready"} 1.0' in text


def test_profiles_file_feeds_the_fallback(tmp_path: Path) -> None:
    from predictor.cli import read_profiles

    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"L4": PROFILE}))
    profiles = read_profiles(path)
    assert profiles["L4"].max_num_seqs == 64
    service = PredictorService(ServiceConfig(profiles=profiles), clock=FixedClock())
    with TestClient(create_app(service)) as c:
        body = c.post("/capacity", json={**ASK, "accelerator": "L4"}).json()
    assert body["source"] == "fallback"
    assert body["fallback_model"] == "analytic"
    assert body["not_ready"]["reason"] == "NoModel"
