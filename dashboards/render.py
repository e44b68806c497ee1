"""Render every dashboard to its JSON file, write the files atomically, and check them.

Why: ``dashboards/json/`` holds what operators import (a ConfigMap for Grafana's provisioning
sidecar, or the UI), and it must always be exactly what the code builds. Rendering is
deterministic — keys sorted, two-space indent, panels numbered in order, one trailing newline —
so an unchanged dashboard renders byte for byte the same, :func:`write` leaves such a file
untouched, and :func:`differing` can name every file that drifted from the code.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dashboards import cost, pools, predictor, slo_overview
from dashboards.sdk import JSONEncoder, builder, models

#: File name → the function that builds the dashboard, in the order the docs present them.
DASHBOARDS: dict[str, Callable[[], builder.Dashboard]] = {
    "slo-overview.json": slo_overview.build,
    "pools.json": pools.build,
    "predictor.json": predictor.build,
    "cost.json": cost.build,
}


def _number_panels(board: models.Dashboard) -> models.Dashboard:
    """Give every panel (rows and their panels included) an id: 1, 2, … in order."""
    next_id = 1
    for panel in board.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1
    return board


def render(build: Callable[[], builder.Dashboard]) -> str:
    """The dashboard's JSON text as the files hold it."""
    board = _number_panels(build().build())
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(board) + "\n"


def render_all() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {name: render(build) for name, build in DASHBOARDS.items()}


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def differing(output_dir: Path) -> list[str]:
    """Names of the dashboard files in ``output_dir`` that are missing or differ from the code."""
    out = []
    for name, text in render_all().items():
        path = output_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def write(output_dir: Path) -> list[str]:
    """Write every dashboard file that is missing or differs; return the names written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = output_dir / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        _write_atomic(path, text)
        written.append(name)
    return written
