"""Versioned window-model artifacts on disk, written and verified like request-level ones.

Why this module exists: window models (:mod:`predictor.window_models`) are trained from a
Prometheus history that takes minutes to read, by a command (``sloscaler predictor
train-windows``) that is not the process answering capacity questions (``sloscaler predictor
serve --windows DIR``). So they are versioned artifacts with the same promises as request-level
models (:mod:`predictor.registry`): written whole into a temporary directory and renamed into
place, every file checksummed, the LightGBM major version and the format checked on load, every
booster re-probed for monotonicity, and the newest version that passes serves while the ones
that fail are reported with their reason.

Layout::

    ROOT/
      v000001/
        metadata.json   format, window and quantile, fit settings, the dataset read (rows, time
                        range, drop counts, ITL metric names), per (accelerator, role): status,
                        rows, trained rate range, conformal offsets, layouts, probes, queueing
                        terms and quantile maps, file checksums
        <acc>-<role>.state.<output>.txt       monotone state boosters (load → KV/running/waiting)
        <acc>-<role>.<target>.<booster>.txt   latency boosters (location, mean) per target

A directory of request-level artifacts is refused here by its format marker (and the other way
round), so pointing one command at the other's directory fails with a clear reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb

from predictor.boosting import TargetBoosters, check_model_text, predict_rows
from predictor.features import FloatArray, Target
from predictor.monotonicity import ProbeGrid, check_monotone
from predictor.outcomes import NotReady, NotReadyReason
from predictor.prometheus_dataset import WindowDataset
from predictor.prometheus_queries import WindowField
from predictor.registry import (
    ArtifactError,
    check_header,
    file_entry,
    library_versions,
    list_versions,
    load_boosters,
    load_newest,
    load_version,
    prune_versions,
    read_checked,
    write_version,
)
from predictor.window_models import (
    StateModel,
    WindowLatencyModel,
    WindowLayout,
    WindowModelConfig,
    WindowSegment,
)

WINDOW_FORMAT = "sloscaler-window-model-artifact/1"


@dataclass(frozen=True)
class WindowArtifact:
    """A loaded, verified window model and what it was trained on."""

    version: str
    model: WindowLatencyModel
    created_at: float
    dataset: Mapping[str, Any]


def _stem(accelerator: str, role: str, *parts: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{accelerator}-{role}")
    return ".".join((safe, *parts, "txt"))


def _layout_json(layout: WindowLayout) -> dict[str, Any]:
    return {
        "target": layout.target.value,
        "columns": list(layout.columns),
        "directions": list(layout.directions),
    }


def _layout(data: Mapping[str, Any]) -> WindowLayout:
    return WindowLayout(
        target=Target(data["target"]),
        columns=tuple(str(c) for c in data["columns"]),
        directions=tuple(int(d) for d in data["directions"]),
    )


def dataset_summary(dataset: WindowDataset) -> dict[str, Any]:
    """What a window model was trained on, for its metadata and the CLI's report."""
    ends = dataset.window_end_s
    return {
        "rows": len(dataset),
        "candidates": dataset.candidates,
        "start": float(ends.min()) if len(dataset) else None,
        "end": float(ends.max()) if len(dataset) else None,
        "drops": {reason.value: n for reason, n in sorted(dataset.drops.items())},
        "itl_metrics": list(dataset.itl_metrics),
        "segments": {f"{a}/{r}": int(rows.size) for (a, r), rows in dataset.segments().items()},
    }


def _segment_json(
    seg: WindowSegment | NotReady, key: tuple[str, str], files: dict[str, bytes]
) -> dict[str, Any]:
    accelerator, role = key
    if isinstance(seg, NotReady):
        return {
            "accelerator": accelerator,
            "role": role,
            "status": "not_ready",
            "reason": seg.reason.value,
            "message": seg.message,
        }
    state = [
        {
            "output": out.value,
            "layout": _layout_json(model.layout),
            "probe": model.probe.to_json(),
            "file": file_entry(
                _stem(accelerator, role, "state", out.value), model.booster.model_to_string(), files
            ),
        }
        for out, model in seg.state.items()
    ]
    latency = []
    for target, boosters in seg.latency.items():
        assert isinstance(boosters.layout, WindowLayout)
        latency.append(
            {
                "target": target.value,
                "layout": _layout_json(boosters.layout),
                "probe": boosters.probe.to_json(),
                "n_train": boosters.n_train,
                "parameters": boosters.parameters_json(),
                "files": {
                    name: file_entry(_stem(accelerator, role, target.value, name), text, files)
                    for name, text in boosters.model_strings().items()
                },
            }
        )
    return {
        "accelerator": accelerator,
        "role": role,
        "status": "ready",
        "n_rows": seg.n_rows,
        "rate_range": list(seg.rate_range),
        "log_offsets": [
            {"target": t.value, "quantile": q, "offset": v} for (t, q), v in seg.log_offsets.items()
        ],
        "state": state,
        "latency": latency,
    }


class WindowModelRegistry:
    """Window-model artifacts under one root directory (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        """Published versions, oldest first."""
        return list_versions(self.root)

    def publish(self, model: WindowLatencyModel, dataset: WindowDataset, created_at: float) -> str:
        """Write ``model`` (trained on ``dataset``) as a new version, atomically."""
        files: dict[str, bytes] = {}
        c = model.config
        metadata = {
            "format": WINDOW_FORMAT,
            "created_at": created_at,
            "libraries": library_versions(),
            "window_s": model.window_s,
            "target_quantile": model.target_quantile,
            "config": {
                "quantiles": list(c.quantiles),
                "serving_quantile": c.serving_quantile,
                "min_rows": c.min_rows,
                "min_load_levels": c.min_load_levels,
                "calibration_fraction": c.calibration_fraction,
                "state_trees": c.state_trees,
                "check_monotone": c.check_monotone,
            },
            "dataset": dataset_summary(dataset),
            "segments": [_segment_json(seg, key, files) for key, seg in model.segments.items()],
        }
        return write_version(self.root, files, metadata)

    def prune(self, keep: int = 5) -> list[str]:
        """Delete all but the newest ``keep`` versions; return the deleted ones."""
        return prune_versions(self.root, keep)

    def load(self, version: str) -> WindowArtifact:
        """Load and verify one version; raise :class:`ArtifactError` if it cannot serve."""
        return load_version(self.root, version, self._decode)

    def _decode(self, version: str, path: Path, meta: Mapping[str, Any]) -> WindowArtifact:
        check_header(version, meta, WINDOW_FORMAT)
        raw = meta["config"]
        config = WindowModelConfig(
            quantiles=tuple(float(q) for q in raw["quantiles"]),
            serving_quantile=float(raw["serving_quantile"]),
            min_rows=int(raw["min_rows"]),
            min_load_levels=int(raw["min_load_levels"]),
            calibration_fraction=float(raw["calibration_fraction"]),
            state_trees=int(raw["state_trees"]),
            check_monotone=bool(raw["check_monotone"]),
        )
        segments: dict[tuple[str, str], WindowSegment | NotReady] = {}
        for entry in meta["segments"]:
            key = (str(entry["accelerator"]), str(entry["role"]))
            if entry["status"] != "ready":
                segments[key] = NotReady(NotReadyReason(entry["reason"]), str(entry["message"]))
                continue
            segments[key] = self._segment(version, path, key, entry, config)
        model = WindowLatencyModel(
            config=config,
            segments=segments,
            window_s=float(meta["window_s"]),
            target_quantile=float(meta["target_quantile"]),
        )
        return WindowArtifact(
            version=version,
            model=model,
            created_at=float(meta["created_at"]),
            dataset=dict(meta["dataset"]),
        )

    def _segment(
        self,
        version: str,
        path: Path,
        key: tuple[str, str],
        entry: Mapping[str, Any],
        config: WindowModelConfig,
    ) -> WindowSegment:
        label = f"{key[0]}/{key[1]}"
        state: dict[WindowField, StateModel] = {}
        for item in entry["state"]:
            output = WindowField(item["output"])
            layout = _layout(item["layout"])
            text = read_checked(path, version, item["file"])
            try:
                check_model_text(text, output.value)
                booster = lgb.Booster(model_str=text)
            except (ValueError, lgb.basic.LightGBMError) as exc:
                raise ArtifactError(version, f"{label} state {output.value}: {exc}") from exc
            if booster.num_feature() != len(layout.columns):
                raise ArtifactError(version, f"{label} state {output.value}: wrong feature count")
            model = StateModel(output, layout, booster, ProbeGrid.from_json(item["probe"]))

            def predict(m: FloatArray, b: lgb.Booster = booster) -> FloatArray:
                return predict_rows(b, m)

            report = check_monotone(predict, layout, model.probe)
            if not report.ok:
                raise ArtifactError(version, f"{label} state {output.value}: {report.describe()}")
            state[output] = model
        latency: dict[WindowField, TargetBoosters] = {}
        for item in entry["latency"]:
            target = WindowField(item["target"])
            boosters = load_boosters(
                path,
                version,
                item,
                _layout(item["layout"]),
                config.quantiles,
                f"{label} {target.value}",
            )
            latency[target] = boosters
        low, high = (float(v) for v in entry["rate_range"])
        offsets = {
            (WindowField(o["target"]), float(o["quantile"])): float(o["offset"])
            for o in entry["log_offsets"]
        }
        return WindowSegment(
            accelerator=key[0],
            role=key[1],
            state=state,
            latency=latency,
            n_rows=int(entry["n_rows"]),
            rate_range=(low, high),
            log_offsets=offsets,
        )

    def load_latest(self) -> tuple[WindowArtifact | None, list[ArtifactError]]:
        """The newest version that verifies, and every newer one that did not (newest first)."""
        return load_newest(self.versions(), self.load, "window_artifact_rejected")


__all__ = [
    "WINDOW_FORMAT",
    "WindowArtifact",
    "WindowModelRegistry",
    "dataset_summary",
]
