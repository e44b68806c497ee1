"""``sloscaler predictor train|eval|serve|train-windows``: the offline contract, the service
launcher, and their error messages (``train-windows`` against a real Prometheus is in
``test_predictor_prometheus_integration.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from predictor.cli import predictor_app
from predictor.samples import write_samples_csv
from predictor.synthetic import synthetic_samples
from tests.prometheus_harness import free_port

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("csv")
    write_samples_csv(synthetic_samples(5_000, seed=31), root / "train.csv")
    write_samples_csv(synthetic_samples(1_500, seed=32), root / "test.csv")
    return root / "train.csv", root / "test.csv"


def test_train_then_eval_round_trip(tmp_path: Path, csv_files: tuple[Path, Path]) -> None:
    train_csv, test_csv = csv_files
    out = tmp_path / "models"
    r = runner.invoke(
        predictor_app,
        ["train", "--data", str(train_csv), "--out", str(out), "--trees", "25"],
    )
    assert r.exit_code == 0, r.output
    assert (out / "v000001" / "metadata.json").is_file()
    r = runner.invoke(
        predictor_app, ["eval", "--model", str(out), "--data", str(test_csv), "--json", "-"]
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["model"] == "v000001"
    assert set(report["metrics"]) == {"ttft", "tpot"}
    for target in ("ttft", "tpot"):
        assert set(report["metrics"][target]) == {"*", "A100", "H100", "L40S"}
        overall = report["metrics"][target]["*"]
        assert overall["n"] == 1_500
        assert set(overall) >= {"n", "coverage_p90", "pinball_p90", "mape_mean", "r2_mean"}
        assert 0.84 <= overall["coverage_p90"] <= 0.96
        assert overall["r2_mean"] > 0.6


def test_eval_on_a_version_directory_with_a_table(
    tmp_path: Path, csv_files: tuple[Path, Path]
) -> None:
    train_csv, test_csv = csv_files
    out = tmp_path / "models"
    args = ["train", "--data", str(train_csv), "--out", str(out)]
    r = runner.invoke(predictor_app, [*args, "--layout", "pooled", "--trees", "20"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        predictor_app, ["eval", "--model", str(out / "v000001"), "--data", str(test_csv)]
    )
    assert r.exit_code == 0, r.output
    assert "ttft   *" in r.stdout


def test_bad_csv_is_one_line_naming_file_line_and_column(
    tmp_path: Path, csv_files: tuple[Path, Path]
) -> None:
    train_csv, _ = csv_files
    lines = train_csv.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("num_request_running")] = "lots"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], *lines[1:5], ",".join(row)]) + "\n")
    r = runner.invoke(predictor_app, ["train", "--data", str(bad), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2
    message = r.stderr.strip()
    assert message.count("\n") == 0
    assert message.startswith("error: ")
    assert f"{bad}: line 6, column num_request_running" in message


def test_missing_model_and_too_little_data(tmp_path: Path, csv_files: tuple[Path, Path]) -> None:
    _, test_csv = csv_files
    r = runner.invoke(
        predictor_app, ["eval", "--model", str(tmp_path / "none"), "--data", str(test_csv)]
    )
    assert r.exit_code == 2
    assert "no usable model artifact" in r.stderr
    small = tmp_path / "small.csv"
    write_samples_csv(synthetic_samples(50, seed=1), small)
    r = runner.invoke(predictor_app, ["train", "--data", str(small), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2
    assert "no segment could be trained" in r.stderr


def test_serve_starts_on_the_registry_with_windows_and_profiles(
    tmp_path: Path, csv_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from fastapi.testclient import TestClient

    train_csv, _ = csv_files
    out = tmp_path / "models"
    train_args = ["train", "--data", str(train_csv), "--out", str(out), "--layout", "pooled"]
    r = runner.invoke(predictor_app, [*train_args, "--trees", "15"])
    assert r.exit_code == 0, r.output
    profiles = tmp_path / "profiles.json"
    l4 = {"prefill_tokens_per_s": 7000, "itl_base_ms": 14, "itl_per_seq_ms": 0.3}
    profiles.write_text(json.dumps({"L4": {**l4, "kv_capacity_tokens": 1e5}}))
    served: dict[str, object] = {}

    def run(app: object, host: str, port: int, log_level: str) -> None:  # the process boundary
        served.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", run)
    args = ["serve", "--model", str(out), "--port", "8123", "--no-train"]
    windows = ["--windows", str(tmp_path / "w")]
    r = runner.invoke(predictor_app, [*args, *windows, "--profiles", str(profiles)])
    assert r.exit_code == 0, r.output
    assert "no window model; /capacity uses the fallback" in r.stderr
    assert served["port"] == 8123
    with TestClient(served["app"]) as client:  # type: ignore[arg-type]
        assert client.get("/readyz").status_code == 200
        ask = {"accelerator": "L4", "isl": 800, "osl": 150, "slo_ttft_ms": 500, "slo_tpot_ms": 60}
        body = client.post("/capacity", json=ask).json()
        assert body["source"] == "fallback"
        assert body["rate_rps"] > 0
        assert client.get("/status").json()["retraining"]["enabled"] is False
    profiles.write_text(json.dumps({"L4": {"prefill_tokens_per_s": -1}}))
    r = runner.invoke(predictor_app, [*args, "--profiles", str(profiles)])
    assert r.exit_code == 2
    assert "L4.prefill_tokens_per_s: Input should be greater than 0" in r.stderr


def test_train_windows_errors_are_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    times = ["--start", "2023-11-14T22:14:27", "--end", "1700000592"]  # ISO (UTC) or epoch s
    args = ["train-windows", "--prometheus-url", url, *times, "--out", str(tmp_path / "w")]
    args += ["--retries", "0"]
    r = runner.invoke(predictor_app, args)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {url}: Prometheus is unreachable")
    assert r.stderr.strip().endswith("(temporary, retry later)")
    assert not (tmp_path / "w").exists()
    r = runner.invoke(predictor_app, [*args, "--end", "yesterday"])
    assert r.exit_code == 2
    assert "--end: expected epoch seconds or an ISO-8601 time" in r.stderr
    r = runner.invoke(predictor_app, [*args, "--match", "namespace"])
    assert r.exit_code == 2
    assert "--match: expected LABEL=VALUE, got 'namespace'" in r.stderr
