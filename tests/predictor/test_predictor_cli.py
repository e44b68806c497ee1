"""``sloscaler predictor train|eval``: the offline contract and its error messages."""

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
