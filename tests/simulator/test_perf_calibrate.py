"""The calibration re-runs from the shared data and reproduces the shipped YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.perf import calibrate
from simulator.perf.catalog import load_catalog, read_data_file

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def result():
    assert (DATA / "calibration").is_dir(), f"shared measurements not found at {DATA}"
    return calibrate.calibrate(DATA)


def test_fresh_fit_matches_the_shipped_profiles(result):
    shipped = {(p.accelerator.name, p.model.name, p.gpus): p for p in load_catalog().profiles}
    fresh = {(e.accelerator, e.model, e.gpus): e for e in result.profiles}
    assert set(fresh) == set(shipped), (
        "profiles.yaml is stale: run python -m simulator.perf.calibrate"
    )
    for key, entry in fresh.items():
        old = shipped[key]
        assert entry.derived == old.derived, key
        assert entry.frontend_overhead_s == pytest.approx(old.frontend_overhead_s, rel=1e-3)
        for name, value in entry.step.as_dict().items():
            assert value == pytest.approx(getattr(old.step, name), rel=1e-3, abs=1e-12), (key, name)


def test_fresh_transports_match_the_shipped_ones(result):
    shipped = {t["name"]: t for t in read_data_file("transports.yaml")}
    for t in result.transports:
        assert t["latency_s"] == pytest.approx(shipped[t["name"]]["latency_s"], rel=1e-3)
        assert t["bandwidth_bytes_s"] == pytest.approx(
            shipped[t["name"]]["bandwidth_bytes_s"], rel=1e-3
        )


def test_splitwise_fit_quality_is_recorded(result):
    for hw in ("a100", "h100"):
        for tp in (2, 4, 8):
            assert result.notes[f"splitwise_fit_prefill_mape.{hw}.tp{tp}"] < 0.15
            assert result.notes[f"splitwise_fit_decode_mape.{hw}.tp{tp}"] < 0.15
    assert result.notes["sweep_fit_mape"] < 0.05
    for hw, tps in (("h100", (4,)), ("mi300x", (1, 2, 4, 8))):
        for tp in tps:
            assert result.notes[f"argonne_fit_mape.{hw}.tp{tp}"] < 0.15
    # Fig. 21: MI300X prefilled 16 prompts of 1,024 tokens 5.85x slower than H100 (Llama-3-8B)
    assert result.notes["argonne_prefill_time_ratio.mi300x"] == pytest.approx(5.85, abs=0.01)


def test_check_prints_the_mape_table(capsys):
    assert calibrate.main(["--check", "--data", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert "| hardware | TP | rows | excluded | prefill MAPE | decode MAPE |" in out
    assert "| h100 | 8 |" in out
    assert "106 rps" in out
    assert "| hardware | GPUs | profile | runs | excluded (KV) | latency MAPE |" in out
    assert "| h100 | 4 | fit | 20 | 0 |" in out


def test_missing_data_dir_is_an_error(tmp_path, capsys):
    assert calibrate.main(["--check", "--data", str(tmp_path)]) == 2
    assert "calibration not found" in capsys.readouterr().err
