"""The HTTP service: llm-d's wire format, 422/413/503 semantics, training, metrics, models."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from predictor.boosting import BoostingParams
from predictor.clock import FixedClock
from predictor.models import ModelConfig
from predictor.registry import ModelRegistry
from predictor.service import PredictorService, ServiceConfig, create_app
from predictor.synthetic import synthetic_samples
from predictor.training import RetrainPolicy, TrainingConfig, TrainingResult

REQUEST: dict[str, Any] = {
    "kv_cache_percentage": 0.4,
    "input_token_length": 800,
    "num_request_waiting": 1,
    "num_request_running": 20,
    "num_tokens_generated": 10,
    "prefix_cache_score": 0.3,
}


@pytest.fixture
def service(trained: TrainingResult) -> PredictorService:
    svc = PredictorService(clock=FixedClock(1_700_000_000.0))
    svc.install(trained.model, "v000007", trained.metrics)
    return svc


@pytest.fixture
def client(service: PredictorService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as c:
        yield c


def test_predict_returns_llm_d_fields(client: TestClient) -> None:
    r = client.post("/predict", json={**REQUEST, "accelerator": "H100"})
    assert r.status_code == 200
    body = r.json()
    for key in (
        "ttft_ms",
        "tpot_ms",
        "predicted_at",
        "model_type",
        "objective_type",
        "quantile",
        "last_model_load",
    ):
        assert key in body
    assert body["ttft_ms"] > 0
    assert body["tpot_ms"] > 0
    assert body["quantile"] == 0.9
    assert body["objective_type"] == "quantile"
    assert body["predicted_at"].startswith("2023-11-14T22:13:20")
    assert body["accelerator"] == "H100"


def test_accelerators_differ(client: TestClient) -> None:
    fast = client.post("/predict", json={**REQUEST, "accelerator": "H100"}).json()
    slow = client.post("/predict", json={**REQUEST, "accelerator": "L40S"}).json()
    assert slow["tpot_ms"] > fast["tpot_ms"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"kv_cache_percentage": 1.5}, "kv_cache_percentage"),
        ({"input_token_length": -1}, "input_token_length"),
        ({"num_request_waiting": "many"}, "num_request_waiting"),
        ({"pod_type": "encoder"}, "pod_type"),
        ({"prefix_cache_score": None}, "prefix_cache_score"),
        ({"prefill_tokens_in_flight": 1.5}, "prefill_tokens_in_flight"),
    ],
)
def test_bad_payload_is_422_naming_the_field(
    client: TestClient, patch: dict[str, Any], field: str
) -> None:
    r = client.post("/predict", json={**REQUEST, **patch})
    assert r.status_code == 422
    assert any(field in d["loc"] for d in r.json()["detail"])


def test_missing_field_and_broken_json_are_422(client: TestClient) -> None:
    body = dict(REQUEST)
    del body["num_request_running"]
    r = client.post("/predict", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "num_request_running"]
    r = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_unknown_accelerator_is_503_with_reason(client: TestClient) -> None:
    r = client.post("/predict", json={**REQUEST, "accelerator": "TPU"})
    assert r.status_code == 503
    assert r.json()["detail"]["reason"] == "UnknownAccelerator"


def test_bulk_non_strict_reports_errors_per_item(client: TestClient) -> None:
    items = [
        {**REQUEST, "accelerator": "H100"},
        {**REQUEST, "kv_cache_percentage": 7},
        {**REQUEST, "accelerator": "TPU"},
        {**REQUEST, "accelerator": "A100"},
    ]
    r = client.post("/predict/bulk", json={"requests": items})
    assert r.status_code == 200
    body = r.json()
    assert body["total_requests"] == 4
    assert body["successful_predictions"] == 2
    assert body["failed_predictions"] == 2
    assert body["predictions"][1] is None
    assert body["predictions"][2] is None
    assert body["predictions"][0]["ttft_ms"] > 0
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert "kv_cache_percentage" in body["errors"][0]["error"]
    assert "UnknownAccelerator" in body["errors"][1]["error"]
    assert body["processing_time_ms"] >= 0


def test_bulk_strict_is_all_or_nothing(client: TestClient) -> None:
    good = [{**REQUEST, "accelerator": a} for a in ("H100", "A100", "L40S")]
    r = client.post("/predict/bulk/strict", json={"requests": good})
    assert r.status_code == 200
    assert r.json()["successful_predictions"] == 3
    assert len(r.json()["predictions"]) == 3
    bad = [*good, {**REQUEST, "num_request_running": -3}]
    r = client.post("/predict/bulk/strict", json={"requests": bad})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "requests", 3, "num_request_running"]
    unknown = [*good, {**REQUEST, "accelerator": "TPU"}]
    r = client.post("/predict/bulk/strict", json={"requests": unknown})
    assert r.status_code == 503
    assert r.json()["detail"][0]["index"] == 3


@pytest.mark.parametrize("path", ["/predict/bulk", "/predict/bulk/strict"])
def test_bulk_size_limits(client: TestClient, path: str) -> None:
    r = client.post(path, json={"requests": [REQUEST] * 10_001})
    assert r.status_code == 413
    r = client.post(path, json={"requests": []})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "requests"]
    r = client.post(path, json={"requests": [{**REQUEST, "accelerator": "H100"}] * 10_000})
    assert r.status_code == 200
    assert r.json()["successful_predictions"] == 10_000


def test_status_health_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    status = client.get("/status").json()
    for key in (
        "is_ready",
        "model_type",
        "objective_type",
        "quantile",
        "last_model_load",
        "training_server_url",
        "models_exist",
        "ensemble_active",
    ):
        assert key in status
    assert status["is_ready"] is True
    assert status["model_version"] == "v000007"
    models = client.get("/v1/models").json()
    ids = {m["id"] for m in models["data"]}
    assert ids == {"A100/aggregated", "H100/aggregated", "L40S/aggregated"}
    h100 = next(m for m in models["data"] if m["accelerator"] == "H100")
    assert {m["target"] for m in h100["held_out"]} == {"ttft", "tpot"}
    assert all(m["accelerator"] == "H100" for m in h100["held_out"])


def test_not_ready_without_a_model() -> None:
    with TestClient(create_app(PredictorService(clock=FixedClock()))) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post("/predict", json=REQUEST)
        assert r.status_code == 503
        assert r.json()["detail"]["reason"] == "NoModel"
        assert c.get("/status").json()["is_ready"] is False


def _entries(n: int, seed: int) -> list[dict[str, Any]]:
    data = synthetic_samples(n, seed=seed)
    frame = data.to_frame()
    frame["pod_type"] = ""
    rows: list[dict[str, Any]] = frame.drop(columns=["timestamp"]).to_dict(orient="records")
    for row in rows:
        for key in ("input_token_length", "num_request_waiting", "num_request_running"):
            row[key] = int(row[key])
        for key in ("prefill_tokens_in_flight", "decode_tokens_in_flight", "num_tokens_generated"):
            row[key] = int(row[key])
    return rows


def test_training_data_trains_publishes_and_serves(
    tmp_path: Path, fast_boosting: BoostingParams
) -> None:
    clock = FixedClock(1_000.0)
    config = ServiceConfig(
        retrain=RetrainPolicy(min_new_samples=3_000, interval_s=60, min_interval_s=10),
        training=TrainingConfig(model=ModelConfig(min_samples=200, boosting=fast_boosting)),
    )
    svc = PredictorService(config, registry=ModelRegistry(tmp_path), clock=clock)
    with TestClient(create_app(svc)) as c:
        r = c.post("/add_training_data_bulk", json={"entries": _entries(1_000, 1)})
        assert r.status_code == 202
        assert r.json()["accepted"] == 1_000
        assert c.get("/readyz").status_code == 503
        r = c.post("/add_training_data_bulk", json={"entries": _entries(5_000, 2)})
        assert r.status_code == 202
        assert c.get("/readyz").status_code == 200
        assert c.get("/status").json()["model_version"] == "v000001"
        bad = _entries(1, 3)
        bad[0]["actual_ttft_ms"] = -5
        r = c.post("/add_training_data_bulk", json={"entries": bad})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "entries", 0, "actual_ttft_ms"]
        # Another service starts from the registry alone.
        other = PredictorService(registry=ModelRegistry(tmp_path), clock=clock)
        other.reload()
        assert other.version == "v000001"


def test_metrics_use_the_service_registry(client: TestClient, service: PredictorService) -> None:
    client.post("/predict", json={**REQUEST, "accelerator": "H100"})
    client.post(
        "/add_training_data_bulk",
        json={"entries": [{**REQUEST, "accelerator": "H100", "actual_ttft_ms": 1e6}]},
    )
    text = client.get("/metrics").text
    assert 'sloscaler_predictor_predictions_total{outcome="ok"}' in text
    assert "sloscaler_predictor_model_ready 1.0" in text
    assert 'sloscaler_predictor_model_info{version="v000007"} 1.0' in text
    assert (
        'sloscaler_predictor_online_coverage{accelerator="H100",quantile="0.9",target="ttft"} 0.0'
        in text
    )
    assert 'sloscaler_predictor_http_requests_total{code="200",endpoint="/predict"}' in text
    assert "sloscaler_predictor_heldout{" in text


def test_adaptive_conformal_offset_follows_posted_actuals(trained: TrainingResult) -> None:
    svc = PredictorService(
        ServiceConfig(train_in_process=False, adaptive_step=0.01), clock=FixedClock(1_000.0)
    )
    svc.install(trained.model, "v000001", trained.metrics)
    loads = [{**REQUEST, "accelerator": "H100", "num_request_waiting": w} for w in range(0, 40, 3)]
    with TestClient(create_app(svc)) as c:
        before = c.post("/predict/bulk", json={"requests": loads}).json()["predictions"]
        # 100 actuals far above every prediction: 100 misses, 10 expected at p90.
        entries = [{**REQUEST, "accelerator": "H100", "actual_ttft_ms": 1e7}] * 100
        assert c.post("/add_training_data_bulk", json={"entries": entries}).status_code == 202
        after = c.post("/predict/bulk", json={"requests": loads}).json()["predictions"]
        status = c.get("/status").json()["adaptive_conformal"]
        text = c.get("/metrics").text
    assert status["step"] == 0.01
    [state] = status["offsets"]  # TPOT was not posted: no TPOT state
    assert (state["target"], state["accelerator"]) == ("ttft", "H100")
    assert state["offset"] == pytest.approx(0.01 * (100 - 10))
    assert (state["observations"], state["miss_rate"]) == (100, 1.0)
    for b, a in zip(before, after, strict=True):
        assert a["ttft_ms"] == pytest.approx(b["ttft_ms"] * math.exp(0.9))
        assert a["tpot_ms"] == pytest.approx(b["tpot_ms"])
    ttft = [a["ttft_ms"] for a in after]
    assert ttft == sorted(ttft)  # one offset for every load: still monotone
    assert 'sloscaler_predictor_adaptive_offset{accelerator="H100",target="ttft"} 0.9' in text
    assert 'sloscaler_predictor_adaptive_miss_rate{accelerator="H100",target="ttft"} 1.0' in text
    svc.install(trained.model, "v000002", trained.metrics)
    assert svc.adaptive == {}  # new split-conformal offsets: the online one starts again


def test_adaptive_step_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="adaptive_step"):
        ServiceConfig(adaptive_step=-0.1)
