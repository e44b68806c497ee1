"""The feature schema: llm-d's names, per-target feature sets, monotone directions."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.features import (
    LOAD_FEATURES,
    TARGET_FEATURES,
    FeatureColumns,
    FeatureLayout,
    PodType,
    RequestFeatures,
    Target,
    monotone_direction,
)

LLM_D_FIELDS = {
    "kv_cache_percentage",
    "input_token_length",
    "num_request_waiting",
    "num_request_running",
    "prefill_tokens_in_flight",
    "decode_tokens_in_flight",
    "prefix_cache_score",
    "num_tokens_generated",
    "pod_type",
}


def test_request_fields_are_llm_d_names_plus_accelerator() -> None:
    assert set(RequestFeatures.__dataclass_fields__) == LLM_D_FIELDS | {"accelerator"}


def test_ttft_uses_prefix_features_and_tpot_uses_tokens_generated() -> None:
    ttft, tpot = set(TARGET_FEATURES[Target.TTFT]), set(TARGET_FEATURES[Target.TPOT])
    assert {"prefix_cache_score", "effective_input_tokens"} <= ttft
    assert "num_tokens_generated" not in ttft
    assert "num_tokens_generated" in tpot
    assert not {"prefix_cache_score", "effective_input_tokens"} & tpot


@pytest.mark.parametrize("target", list(Target))
def test_load_features_are_non_decreasing_in_both_targets(target: Target) -> None:
    assert all(monotone_direction(target, f) == 1 for f in LOAD_FEATURES)


@pytest.mark.parametrize(
    ("target", "feature", "direction"),
    [
        (Target.TTFT, "prefix_cache_score", -1),
        (Target.TTFT, "effective_input_tokens", 1),
        (Target.TTFT, "input_token_length", 1),
        (Target.TPOT, "num_tokens_generated", 0),
        (Target.TPOT, "pod_type", 0),
    ],
)
def test_other_directions(target: Target, feature: str, direction: int) -> None:
    assert monotone_direction(target, feature) == direction


def test_effective_input_tokens_worked_example() -> None:
    row = RequestFeatures(0.5, 2000, 0, 0, prefix_cache_score=0.75)
    assert row.effective_input_tokens == 500.0
    cols = FeatureColumns.from_requests([row])
    assert cols.numeric("effective_input_tokens")[0] == 500.0


def test_pooled_layout_appends_categoricals_without_constraints() -> None:
    layout = FeatureLayout.for_target(Target.TTFT, pooled=True, accelerators=("A100", "H100"))
    assert layout.columns[-2:] == ("pod_type", "accelerator")
    assert layout.monotone_constraints[-2:] == [0, 0]
    assert layout.categorical_indices == [len(layout.columns) - 2, len(layout.columns) - 1]
    cols = FeatureColumns.from_requests(
        [
            RequestFeatures(0.1, 10, 0, 1, pod_type=PodType.DECODE, accelerator="H100"),
            RequestFeatures(0.1, 10, 0, 1, accelerator="L4"),
        ]
    )
    m = layout.matrix(cols)
    assert m[0, -2:].tolist() == [2.0, 1.0]
    assert np.isnan(m[1, -1])


def test_columns_round_trip_rows_and_take() -> None:
    rows = [
        RequestFeatures(0.2, 100 + i, i, 2 * i, 3, 4, 0.5, 7, PodType.PREFILL, "H100")
        for i in range(5)
    ]
    cols = FeatureColumns.from_requests(rows)
    assert [cols.row(i) for i in range(5)] == rows
    picked = cols.take(np.array([False, True, False, True, False]))
    assert [picked.row(i) for i in range(2)] == [rows[1], rows[3]]


def test_from_arrays_requires_load_columns() -> None:
    with pytest.raises(ValueError, match="num_request_running"):
        FeatureColumns.from_arrays(
            {"input_token_length": [1], "kv_cache_percentage": [0], "num_request_waiting": [0]}
        )
