"""The dashboards' JSON files, the render command and the metric names the panels use.

``dashboards/json/`` must be exactly what the code renders (``sloscaler dashboards render``),
rendering must be deterministic, ``--check`` must name every file that drifted, the commands
docs/dashboards.md shows must run, and every series a panel reads must be one the project
documents: the controller's (docs/metrics.md), the predictor service's (docs/predictor.md),
vLLM's and the gateway's
(docs/metrics-simulator.md) or a recording rule of a PrometheusRule under deploy/. Running the
queries against a real Prometheus is tests/test_dashboards.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli import app
from dashboards.render import DASHBOARDS, differing, render_all

ROOT = Path(__file__).resolve().parents[1]
JSON_DIR = ROOT / "dashboards" / "json"
KUBECTL = shutil.which("kubectl")

runner = CliRunner()


def _targets(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            yield from inner.get("targets", [])


def test_committed_json_is_what_the_code_renders() -> None:
    assert differing(JSON_DIR) == [], "run: sloscaler dashboards render"
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(DASHBOARDS)


def test_render_is_deterministic_and_check_names_drift(tmp_path: Path) -> None:
    out = tmp_path / "json"
    first = runner.invoke(app, ["dashboards", "render", "--output-dir", str(out)])
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == sorted(DASHBOARDS)
    again = runner.invoke(app, ["dashboards", "render", "--output-dir", str(out)])
    assert again.exit_code == 0
    assert "0 written" in again.output  # nothing changed, nothing rewritten
    assert render_all() == {p.name: p.read_text() for p in out.iterdir()}

    ok = runner.invoke(app, ["dashboards", "render", "--output-dir", str(out), "--check"])
    assert ok.exit_code == 0, ok.output
    (out / "pools.json").write_text("{}\n")
    (out / "cost.json").unlink()
    stale = runner.invoke(app, ["dashboards", "render", "--output-dir", str(out), "--check"])
    assert stale.exit_code == 1
    assert "pools.json differs" in stale.output
    assert "cost.json differs" in stale.output
    assert "slo-overview.json" not in stale.output
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file behind


def _documented_commands() -> list[str]:
    doc = (ROOT / "docs" / "dashboards.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_documented_sloscaler_commands_run(tmp_path: Path) -> None:
    """Every ``sloscaler`` command docs/dashboards.md shows, from a scratch repository root."""
    commands = [c for c in _documented_commands() if c.startswith("sloscaler ")]
    assert len(commands) >= 2
    for line in commands:
        result = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "sloscaler"), *line.split()[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr)
    assert differing(tmp_path / "dashboards" / "json") == []


def test_the_documented_commands_are_all_run() -> None:
    assert {c.split()[0] for c in _documented_commands()} <= {"sloscaler", "kubectl"}


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not on PATH")
def test_the_kustomization_makes_one_configmap_for_the_sidecar() -> None:
    (command,) = [c for c in _documented_commands() if c.startswith("kubectl ")]
    out = subprocess.run(
        [str(KUBECTL), *command.split()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (cm,) = [d for d in yaml.safe_load_all(out) if d]
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "sloscaler-dashboards"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == render_all()


def _recorded_names() -> set[str]:
    names = set()
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
                for group in doc["spec"]["groups"]:
                    names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (strings, label lists, matchers and ranges
    removed; what is left and not called like a function is a name)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b|\$\{?\w+\}?", " ", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0) in ("or", "and", "unless", "bool", "offset"):
            continue
        names.add(m.group(0))
    return names


def test_metric_names_are_parsed() -> None:
    expr = (
        'sum by (model) (avg_over_time(sloscaler_pool_gpus{a=~"$x"}[$__range])'
        ' * on (namespace, policy) group_left (model) sloscaler_policy_info{b="c"}) * 2 / 3600'
        " * $__range_s * 1e6 or sloscaler:errors:rate5m"
    )
    assert metric_names(expr) == {
        "sloscaler_pool_gpus",
        "sloscaler_policy_info",
        "sloscaler:errors:rate5m",
    }


def test_every_panel_reads_documented_series_only() -> None:
    controller = set(
        re.findall(r"`(sloscaler_[a-z0-9_]+)`", (ROOT / "docs/metrics.md").read_text())
    )
    predictor = set(
        re.findall(r"`(sloscaler_predictor_[a-z0-9_]+)", (ROOT / "docs/predictor.md").read_text())
    )
    simulator = (ROOT / "docs/metrics-simulator.md").read_text()
    recorded = _recorded_names()
    read: set[str] = set()
    for name, text in render_all().items():
        for target in _targets(json.loads(text)):
            for metric in metric_names(target["expr"]):
                read.add(metric)
                if metric in controller or metric in predictor or metric in recorded:
                    continue
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert metric.startswith(("vllm:", "inference_")), (name, metric)
                assert base in simulator, (name, metric)
    assert {
        "sloscaler:slo_attainment:ratio_rate1h",
        "vllm:time_to_first_token_seconds_bucket",
        "sloscaler_predictor_window_model_ready",
    } <= read
