"""Versioned model artifacts on disk: atomic publish, verified load, fall back on corruption.

Why this module exists: models outlive processes (ARCHITECTURE: nothing only in memory), several
predictor replicas load the same artifacts, and a half-written or tampered file must never
serve. So an artifact is a directory written whole and then renamed into place (a reader sees
all of it or none of it), its metadata records what it needs to be trusted, and loading checks
every one of those facts; the newest artifact that passes serves, the ones that fail are
reported with their reason.

Layout::

    ROOT/
      v000001/            one artifact (name = version, increasing)
        metadata.json     format, features, layout, quantiles, training window, row counts,
                          held-out metrics, calibration, queueing terms and quantile maps,
                          library versions, per-file SHA-256
        <segment>.<target>.<booster>.txt     LightGBM text models (location, mean)
      .tmp-v000002-1234/  being written; renamed to v000002 when complete

Checks on load, each failure an :class:`ArtifactError` naming the version and the reason:
format marker; LightGBM major version; every file present with its recorded SHA-256; the
feature columns equal to this code's schema; every booster parses and reads that many columns;
and the monotonicity probe (:mod:`predictor.monotonicity`) passes again on the loaded boosters.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import structlog

from predictor.boosting import Objective, TargetBoosters
from predictor.calibration import ConformalCalibration
from predictor.features import FeatureLayout, Target
from predictor.metrics import HeldOutMetrics
from predictor.models import LatencyModel, Layout, ModelConfig, SegmentKey, TargetFit
from predictor.monotonicity import ProbeGrid
from predictor.outcomes import NotReady, NotReadyReason
from predictor.training import TrainingResult

FORMAT = "sloscaler-predictor-artifact/2"
METADATA = "metadata.json"
_VERSION = re.compile(r"^v(\d{6,})$")

log = structlog.get_logger("predictor.registry")
T = TypeVar("T")


class ArtifactError(Exception):
    """An artifact that cannot serve; ``reason`` says why in one line."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"model artifact {version}: {reason}")
        self.version = version
        self.reason = reason


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified model and the evidence stored with it."""

    version: str
    model: LatencyModel
    created_at: float
    metrics: tuple[HeldOutMetrics, ...]
    rows: Mapping[str, int]
    window: tuple[float | None, float | None]
    libraries: Mapping[str, str]


def library_versions() -> dict[str, str]:
    return {
        "lightgbm": lgb.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_stem(key: SegmentKey, target: Target, objective: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{key.accelerator}-{key.role}")
    return f"{safe}.{target.value}.{objective}.txt"


def _layout_json(layout: FeatureLayout) -> dict[str, Any]:
    return {
        "columns": list(layout.columns),
        "categorical": list(layout.categorical),
        "accelerators": list(layout.accelerators),
        "monotone_constraints": layout.monotone_constraints,
    }


def list_versions(root: Path) -> list[str]:
    """Versions (``v000001``, …) published under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if p.is_dir() and _VERSION.match(p.name)]
    return sorted(found, key=lambda v: int(v[1:]))


def load_boosters(
    path: Path,
    version: str,
    entry: Mapping[str, Any],
    layout: FeatureLayout,
    quantiles: tuple[float, ...],
    label: str,
) -> TargetBoosters:
    """One target's boosters from a version's files (checksums verified), rejected with
    :class:`ArtifactError` naming ``label`` when they do not load or are not monotone."""
    texts = {name: read_checked(path, version, ref) for name, ref in entry["files"].items()}
    try:
        boosters = TargetBoosters.from_model_strings(
            layout,
            quantiles,
            texts,
            int(entry["n_train"]),
            ProbeGrid.from_json(entry["probe"]),
            entry["parameters"],
        )
    except ValueError as exc:
        raise ArtifactError(version, f"{label}: {exc}") from exc
    objective, report = boosters.check_monotone()
    if not report.ok:
        raise ArtifactError(version, f"{label} {objective}: {report.describe()}")
    return boosters


def load_newest(
    versions: Sequence[str], load: Callable[[str], T], event: str
) -> tuple[T | None, list[ArtifactError]]:
    """The newest of ``versions`` that ``load`` verifies, and every newer one it rejected
    (newest first, each logged as ``event``)."""
    rejected: list[ArtifactError] = []
    for version in reversed(versions):
        try:
            return load(version), rejected
        except ArtifactError as exc:
            log.warning(event, version=version, reason=exc.reason)
            rejected.append(exc)
    return None, rejected


def write_version(root: Path, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> str:
    """Write ``files`` and ``metadata.json`` as the next version under ``root``, atomically
    (a temporary directory renamed into place); return the version."""
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        existing = list_versions(root)
        version = f"v{int(existing[-1][1:]) + 1 if existing else 1:06d}"
        tmp = root / f".tmp-{version}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            body = json.dumps({**metadata, "version": version}, indent=2, sort_keys=True)
            with open(tmp / METADATA, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, root / version)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if (root / version).exists():
                continue  # another writer took this version; try the next one
            raise
        log.info("artifact_published", version=version, root=str(root))
        return version
    raise ArtifactError("(new)", "could not find a free version name")


def prune_versions(root: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions under ``root``; return the deleted ones."""
    versions = list_versions(root)
    doomed = versions[:-keep] if keep > 0 else versions
    for v in doomed:
        shutil.rmtree(root / v, ignore_errors=True)
    return doomed


def read_metadata(root: Path, version: str) -> dict[str, Any]:
    """``metadata.json`` of one version, parsed; :class:`ArtifactError` if unreadable."""
    try:
        raw = (root / version / METADATA).read_text(encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(version, f"cannot read {METADATA} ({exc.strerror})") from exc
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArtifactError(version, f"{METADATA} is not valid JSON ({exc.msg})") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(version, f"{METADATA} is not a JSON object")
    return meta


def load_version(root: Path, version: str, decode: Callable[[str, Path, dict[str, Any]], T]) -> T:
    """Read one version's metadata and ``decode`` it; a metadata field that is missing or of
    the wrong type becomes an :class:`ArtifactError` naming it, like every other refusal."""
    meta = read_metadata(root, version)
    try:
        return decode(version, root / version, meta)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(version, f"malformed metadata ({type(exc).__name__}: {exc})") from exc


def check_header(version: str, meta: Mapping[str, Any], expected_format: str) -> None:
    """Refuse another format or another LightGBM major version (:class:`ArtifactError`)."""
    if meta.get("format") != expected_format:
        found = meta.get("format")
        raise ArtifactError(version, f"format is {found!r}; this version reads {expected_format!r}")
    theirs = str(meta["libraries"]["lightgbm"]).split(".")[0]
    if theirs != lgb.__version__.split(".")[0]:
        raise ArtifactError(
            version,
            f"written by LightGBM {meta['libraries']['lightgbm']}, this is {lgb.__version__}",
        )


def read_checked(path: Path, version: str, ref: Mapping[str, Any]) -> str:
    """The text of the file ``ref`` names (``{path, sha256}``), verified against its checksum."""
    file = path / str(ref["path"])
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ArtifactError(version, f"missing model file {ref['path']}") from exc
    if _sha256(data) != ref["sha256"]:
        raise ArtifactError(version, f"checksum mismatch in {ref['path']}")
    return data.decode()


def file_entry(name: str, text: str, files: dict[str, bytes]) -> dict[str, str]:
    """Add ``text`` to ``files`` as ``name``; return its ``{path, sha256}`` reference."""
    data = text.encode()
    files[name] = data
    return {"path": name, "sha256": _sha256(data)}


class ModelRegistry:
    """Artifacts under one root directory (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ writing

    def versions(self) -> list[str]:
        """Published versions, oldest first."""
        return list_versions(self.root)

    def publish(self, result: TrainingResult) -> str:
        """Write ``result`` as a new version, atomically; return the version."""
        files: dict[str, bytes] = {}
        segments: list[dict[str, Any]] = []
        model = result.model
        for key, fits in model.segments.items():
            targets: dict[str, Any] = {}
            for target, fit in fits.items():
                if isinstance(fit, NotReady):
                    targets[target.value] = {
                        "status": "not_ready",
                        "reason": fit.reason.value,
                        "message": fit.message,
                    }
                    continue
                entry_files: dict[str, dict[str, str]] = {}
                for objective, text in fit.model_strings().items():
                    name = _file_stem(key, target, objective)
                    entry_files[objective] = file_entry(name, text, files)
                targets[target.value] = {
                    "status": "ready",
                    "n_train": fit.n_train,
                    "layout": _layout_json(fit.layout),
                    "probe": fit.probe.to_json(),
                    "parameters": fit.parameters_json(),
                    "files": entry_files,
                }
            segments.append({"accelerator": key.accelerator, "role": key.role, "targets": targets})
        metadata = {
            "format": FORMAT,
            "created_at": result.trained_at,
            "layout": model.config.layout.value,
            "quantiles": list(model.config.quantiles),
            "serving_quantile": model.config.serving_quantile,
            "min_samples": model.config.min_samples,
            "accelerators": list(model.accelerators),
            "features": {t.value: list(FeatureLayout.for_target(t).columns) for t in Target},
            "training_window": {"start": result.window[0], "end": result.window[1]},
            "rows": dict(result.rows),
            "held_out_metrics": [m.to_json() for m in result.metrics],
            "calibration": model.calibration.to_json(),
            "libraries": library_versions(),
            "segments": segments,
        }
        return write_version(self.root, files, metadata)

    def prune(self, keep: int = 5) -> list[str]:
        """Delete all but the newest ``keep`` versions; return the deleted ones."""
        return prune_versions(self.root, keep)

    # ------------------------------------------------------------------ reading

    def load(self, version: str) -> Artifact:
        """Load and verify one version; raise :class:`ArtifactError` if it cannot serve."""
        return load_version(self.root, version, self._decode)

    def _decode(self, version: str, path: Path, meta: dict[str, Any]) -> Artifact:
        check_header(version, meta, FORMAT)
        for t in Target:
            if meta["features"][t.value] != list(FeatureLayout.for_target(t).columns):
                raise ArtifactError(version, f"{t.value} features differ from this schema")
        config = ModelConfig(
            quantiles=tuple(float(q) for q in meta["quantiles"]),
            serving_quantile=float(meta["serving_quantile"]),
            layout=Layout(meta["layout"]),
            min_samples=int(meta["min_samples"]),
        )
        accelerators = tuple(str(a) for a in meta["accelerators"])
        segments: dict[SegmentKey, dict[Target, TargetFit]] = {}
        for seg in meta["segments"]:
            key = SegmentKey(str(seg["accelerator"]), str(seg["role"]))
            fits: dict[Target, TargetFit] = {}
            for tname, entry in seg["targets"].items():
                target = Target(tname)
                if entry["status"] != "ready":
                    fits[target] = NotReady(NotReadyReason(entry["reason"]), str(entry["message"]))
                    continue
                fits[target] = self._load_target(version, path, key, target, entry, config)
            segments[key] = fits
        model = LatencyModel(
            config=config,
            accelerators=accelerators,
            segments=segments,
            calibration=ConformalCalibration.from_json(meta["calibration"]),
        )
        window = meta["training_window"]
        return Artifact(
            version=version,
            model=model,
            created_at=float(meta["created_at"]),
            metrics=tuple(HeldOutMetrics.from_json(m) for m in meta["held_out_metrics"]),
            rows={str(k): int(v) for k, v in meta["rows"].items()},
            window=(window["start"], window["end"]),
            libraries={str(k): str(v) for k, v in meta["libraries"].items()},
        )

    def _load_target(
        self,
        version: str,
        path: Path,
        key: SegmentKey,
        target: Target,
        entry: dict[str, Any],
        config: ModelConfig,
    ) -> TargetBoosters:
        lay = entry["layout"]
        layout = FeatureLayout(
            target=target,
            columns=tuple(lay["columns"]),
            categorical=tuple(lay["categorical"]),
            accelerators=tuple(lay["accelerators"]),
        )
        return load_boosters(
            path, version, entry, layout, config.quantiles, f"{key.label} {target.value}"
        )

    def load_latest(self) -> tuple[Artifact | None, list[ArtifactError]]:
        """The newest version that verifies, and every newer one that did not (newest first)."""
        return load_newest(self.versions(), self.load, "artifact_rejected")


__all__ = [
    "FORMAT",
    "Artifact",
    "ArtifactError",
    "ModelRegistry",
    "Objective",
    "check_header",
    "file_entry",
    "list_versions",
    "load_version",
    "prune_versions",
    "read_checked",
    "read_metadata",
    "write_version",
]
