"""Artifacts: atomic versions, verified loads, and the previous version serving on corruption."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from predictor.boosting import BoostingParams, fit_target
from predictor.features import FeatureLayout, Target
from predictor.registry import ArtifactError, ModelRegistry
from predictor.synthetic import synthetic_samples
from predictor.training import TrainingResult


def test_publish_then_load_gives_the_same_predictions(
    tmp_path: Path, trained: TrainingResult
) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.publish(trained)
    assert version == "v000001"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    artifact = registry.load(version)
    data = synthetic_samples(300, seed=21).features
    before = trained.model.predict_serving(data)
    after = artifact.model.predict_serving(data)
    np.testing.assert_allclose(after.ttft_ms, before.ttft_ms)
    np.testing.assert_allclose(after.tpot_ms, before.tpot_ms)
    assert artifact.created_at == trained.trained_at
    assert artifact.metrics == trained.metrics
    assert artifact.rows == trained.rows
    assert artifact.libraries["lightgbm"]


def test_metadata_names_features_window_counts_and_libraries(
    tmp_path: Path, trained: TrainingResult
) -> None:
    registry = ModelRegistry(tmp_path)
    meta = json.loads((tmp_path / registry.publish(trained) / "metadata.json").read_text())
    assert meta["features"]["ttft"][-1] == "effective_input_tokens"
    assert meta["training_window"]["start"] == 0.0
    assert meta["rows"]["fit"] > 0
    assert {m["target"] for m in meta["held_out_metrics"]} == {"ttft", "tpot"}
    assert set(meta["libraries"]) == {"lightgbm", "numpy", "python"}


def _corrupt_model_file(path: Path) -> None:
    model_file = sorted(path.glob("*.ttft.location.txt"))[0]
    text = model_file.read_text()
    model_file.write_text(text.replace("leaf_value=", "leaf_value=9", 1))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_model_file, "checksum mismatch"),
        (lambda p: (p / "metadata.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "metadata.json").unlink(), "cannot read metadata.json"),
        (lambda p: sorted(p.glob("*.tpot.mean.txt"))[0].unlink(), "missing model file"),
    ],
)
def test_corrupt_newest_is_rejected_and_previous_serves(
    tmp_path: Path, trained: TrainingResult, damage: object, reason: str
) -> None:
    registry = ModelRegistry(tmp_path)
    first = registry.publish(trained)
    second = registry.publish(trained)
    damage(tmp_path / second)  # type: ignore[operator]
    artifact, rejected = registry.load_latest()
    assert artifact is not None
    assert artifact.version == first
    assert [e.version for e in rejected] == [second]
    assert reason in rejected[0].reason
    with pytest.raises(ArtifactError, match=f"model artifact {second}: .*{reason}"):
        registry.load(second)


def test_incompatible_artifacts_are_rejected(tmp_path: Path, trained: TrainingResult) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.publish(trained)
    meta_path = tmp_path / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["libraries"]["lightgbm"] = "3.3.5"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"LightGBM 3\.3\.5"):
        registry.load(version)
    meta["libraries"]["lightgbm"] = "4.7.0"
    meta["features"]["tpot"] = ["kv_cache_percentage"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="tpot features differ"):
        registry.load(version)


def _swap_booster(path: Path, target: Target, objective: str, new_text: str) -> None:
    """Replace one booster file and update its recorded checksum to match."""
    meta = json.loads((path / "metadata.json").read_text())
    ref = meta["segments"][0]["targets"][target.value]["files"][objective]
    (path / ref["path"]).write_text(new_text)
    ref["sha256"] = hashlib.sha256(new_text.encode()).hexdigest()
    (path / "metadata.json").write_text(json.dumps(meta))


def test_a_non_monotone_booster_is_rejected_on_load(
    tmp_path: Path, trained: TrainingResult, fast_boosting: BoostingParams
) -> None:
    """A booster fitted without constraints, slipped into an artifact with a valid checksum."""
    registry = ModelRegistry(tmp_path)
    version = registry.publish(trained)
    layout = FeatureLayout.for_target(Target.TTFT)
    rng = np.random.default_rng(0)
    matrix = rng.random((2_000, len(layout.columns))) * 50
    running = layout.columns.index("num_request_running")
    falling = 500.0 / (1.0 + matrix[:, running])
    rogue = fit_target(
        matrix, falling, layout, (0.5, 0.9), replace(fast_boosting, monotone=False)
    ).model_strings()["location"]
    _swap_booster(tmp_path / version, Target.TTFT, "location", rogue)
    with pytest.raises(ArtifactError, match="break monotonicity"):
        registry.load(version)


def test_a_mangled_booster_with_a_matching_checksum_is_refused_not_crashing(
    tmp_path: Path, trained: TrainingResult
) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.publish(trained)
    path = tmp_path / version
    meta = json.loads((path / "metadata.json").read_text())
    ref = meta["segments"][0]["targets"]["ttft"]["files"]["location"]
    text = (path / ref["path"]).read_text().replace("leaf_value=", "leaf_value=1 ", 1)
    _swap_booster(path, Target.TTFT, "location", text)
    with pytest.raises(ArtifactError, match="tree sizes do not match"):
        registry.load(version)


def test_empty_registry_and_prune(tmp_path: Path, trained: TrainingResult) -> None:
    registry = ModelRegistry(tmp_path / "none")
    assert registry.load_latest() == (None, [])
    registry = ModelRegistry(tmp_path)
    for _ in range(3):
        registry.publish(trained)
    assert registry.prune(keep=1) == ["v000001", "v000002"]
    assert registry.versions() == ["v000003"]
