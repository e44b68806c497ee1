"""The stratified buffer keeps rare high-load rows; the hashed split is deterministic."""

from __future__ import annotations

import numpy as np

from predictor.buffer import BucketScheme, Split, SplitPolicy, TrainingBuffer, row_hashes
from predictor.features import FeatureColumns
from predictor.samples import RequestSamples
from predictor.synthetic import synthetic_samples


def rows(n: int, waiting: float, kv: float, seed: int) -> RequestSamples:
    rng = np.random.default_rng(seed)
    features = FeatureColumns.from_arrays(
        {
            "kv_cache_percentage": np.full(n, kv),
            "input_token_length": rng.integers(1, 1000, n),
            "num_request_waiting": np.full(n, waiting),
            "num_request_running": rng.integers(0, 10, n),
        },
        accelerator="H100",
    )
    return RequestSamples.build(
        features, actual_ttft_ms=rng.random(n) * 100, timestamp=rng.random(n)
    )


def test_bucket_worked_example() -> None:
    scheme = BucketScheme()
    cols = FeatureColumns.from_arrays(
        {
            "kv_cache_percentage": [0.83],
            "input_token_length": [1],
            "num_request_waiting": [5],
            "num_request_running": [0],
            "prefix_cache_score": [0.6],
        }
    )
    _, nk, npf = scheme.shape
    assert scheme.buckets(cols)[0] == (3 * nk + 8) * npf + 2


def test_rare_high_load_rows_survive_a_flood_of_light_load() -> None:
    buffer = TrainingBuffer(per_bucket=100)
    buffer.add(rows(30, waiting=40, kv=0.95, seed=1))
    for seed in range(20):
        buffer.add(rows(500, waiting=0, kv=0.05, seed=100 + seed))
    data, _ = buffer.samples()
    assert len(data) == 130
    assert int((data.features.values["num_request_waiting"] == 40).sum()) == 30
    stats = buffer.stats()
    assert stats.added == 30 + 20 * 500
    assert stats.evicted == 20 * 500 - 100
    assert stats.rows_by_segment == {"H100/aggregated": 130}


def test_a_full_bucket_keeps_its_newest_rows() -> None:
    buffer = TrainingBuffer(per_bucket=10)
    batch = rows(25, waiting=0, kv=0.0, seed=3)
    buffer.add(batch)
    data, _ = buffer.samples()
    np.testing.assert_array_equal(data.timestamp, batch.timestamp[-10:])


def test_hashed_split_is_deterministic_and_about_ten_percent() -> None:
    data = synthetic_samples(20_000, seed=4)
    policy = SplitPolicy()
    first = policy.assign(row_hashes(data))
    again = policy.assign(row_hashes(data.take(np.arange(len(data))[::-1])))[::-1]
    np.testing.assert_array_equal(first, again)
    assert 0.09 < float(np.mean(first == 2)) < 0.11
    assert 0.19 < float(np.mean(first == 1)) < 0.21
    parts = policy.split(data)
    assert sum(len(p) for p in parts.values()) == len(data)
    assert len(parts[Split.TEST]) == int((first == 2).sum())


def test_buffer_rows_keep_their_split_after_a_round_trip() -> None:
    data = synthetic_samples(3_000, seed=8)
    buffer = TrainingBuffer()
    buffer.add(data)
    stored, hashes = buffer.samples()
    np.testing.assert_array_equal(np.sort(hashes), np.sort(row_hashes(data)))
    np.testing.assert_array_equal(row_hashes(stored), hashes)
