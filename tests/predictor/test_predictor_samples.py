"""Sample CSV files: round trip, and one-line errors naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from predictor.samples import SampleFormatError, read_samples_csv, write_samples_csv
from predictor.synthetic import synthetic_samples

HEADER = (
    "kv_cache_percentage,input_token_length,num_request_waiting,num_request_running,"
    "prefix_cache_score,accelerator,actual_ttft_ms,actual_tpot_ms"
)


def test_round_trip(tmp_path: Path) -> None:
    data = synthetic_samples(50, seed=2)
    data = data.take(np.arange(50))
    path = tmp_path / "s.csv"
    write_samples_csv(data, path)
    back = read_samples_csv(path)
    np.testing.assert_allclose(back.actual_ttft_ms, data.actual_ttft_ms)
    assert back.features.accelerator == data.features.accelerator
    assert back.features.row(7) == data.features.row(7)


def test_empty_target_cells_are_unknown(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(f"{HEADER}\n0.1,100,0,2,0.5,H100,12.5,\n0.2,100,0,2,0.5,H100,,3.0\n")
    data = read_samples_csv(path)
    assert np.isnan(data.actual_tpot_ms[0])
    assert np.isnan(data.actual_ttft_ms[1])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "0.1,100,0,2,0.5,H100,12,3\n1.5,100,0,2,0.5,H100,12,3\n",
            "line 3, column kv_cache_percentage",
        ),
        ("0.1,abc,0,2,0.5,H100,12,3\n", "line 2, column input_token_length"),
        ("0.1,100,-1,2,0.5,H100,12,3\n", "line 2, column num_request_waiting"),
        ("0.1,100,0,2,0.5,H100,-4,3\n", "line 2, column actual_ttft_ms"),
    ],
)
def test_bad_cells_are_named(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"{HEADER}\n{body}")
    with pytest.raises(SampleFormatError, match=expected) as info:
        read_samples_csv(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_column_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("input_token_length,actual_ttft_ms\n1,2\n")
    with pytest.raises(SampleFormatError, match="missing column kv_cache_percentage"):
        read_samples_csv(path)
    with pytest.raises(SampleFormatError, match="no such file"):
        read_samples_csv(tmp_path / "nope.csv")


def test_bad_pod_type(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(f"{HEADER},pod_type\n0.1,100,0,2,0.5,H100,12,3,encoder\n")
    with pytest.raises(SampleFormatError, match="line 2, column pod_type"):
        read_samples_csv(path)
