"""The Grafana dashboards and the PrometheusRule against a real Prometheus holding a simulated run.

A closed-loop run (``tests/dashboard_recording.py``: vLLM pods, the gateway and the controller's
own series, labelled as a cluster's scrape labels them) is backfilled with ``promtool tsdb
create-blocks-from openmetrics``. The recording rules of every PrometheusRule under ``deploy/``
are then evaluated over it and backfilled too with ``promtool tsdb create-blocks-from rules`` —
rules that read other rules' output in a later pass, as promtool requires — which is what a
cluster holds once the PrometheusRule has run for a while.

Checks: every template variable of every dashboard resolves to at least one value; every panel
query — variables substituted as Grafana's Prometheus data source substitutes them, ``$__range``
as the recording's length — executes and returns at least one finite value; every rule
expression, recording and alerting, executes without error (the 3-day windows included: they
run over the 30 minutes there are). The JSON files and the render command are checked in
tests/test_dashboards_render.py, without Prometheus.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards.render import DASHBOARDS, render_all
from tests.dashboard_recording import Recording, record_closed_loop
from tests.prometheus_harness import backfill, requires_prometheus, running_prometheus

ROOT = Path(__file__).resolve().parents[1]
SCRAPE_S = 15
RATE_INTERVAL = "1m"  # Grafana's $__rate_interval for a 15 s scrape: 4 × 15 s
STEP_S = 60

pytestmark = requires_prometheus


# --- helpers -----------------------------------------------------------------------------------


def _rule_groups() -> list[dict[str, Any]]:
    """The groups of every PrometheusRule under deploy/."""
    groups: list[dict[str, Any]] = []
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
                groups.extend(doc["spec"]["groups"])
    assert groups, "no PrometheusRule under deploy/"
    return groups


def _targets(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield {**target, "panel": inner["title"]}


def _rule_layers(groups: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Recording rules as one-rule groups, in passes: a rule reading another rule's output
    comes in a later pass than that rule (promtool cannot backfill both at once)."""
    rules = [(g, r) for g in groups for r in g["rules"] if "record" in r]
    recorded = {r["record"] for _, r in rules}
    done: set[str] = set()
    layers: list[list[dict[str, Any]]] = []
    while rules:
        ready = [
            (g, r)
            for g, r in rules
            if set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", r["expr"])) & recorded <= done
        ]
        assert ready, f"recording rules depend on each other in a cycle: {rules}"
        layer = []
        for i, (g, r) in enumerate(ready):
            group: dict[str, Any] = {"name": f"{g['name']}-{i}", "rules": [r]}
            if "interval" in g:
                group["interval"] = g["interval"]
            layer.append(group)
        layers.append(layer)
        done |= {r["record"] for _, r in ready}
        rules = [(g, r) for g, r in rules if (g, r) not in ready]
    return layers


@dataclass(frozen=True)
class Backfilled:
    url: str
    recording: Recording


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    root = tmp_path_factory.mktemp("dashboards")
    recording = record_closed_loop(root / "run.om")
    data = root / "data"
    backfill(recording.path, data)
    config = root / "config"
    config.mkdir()
    for n, layer in enumerate(_rule_layers(_rule_groups())):
        rules = root / f"rules-{n}.yaml"
        rules.write_text(yaml.safe_dump({"groups": layer}))
        blocks = root / f"blocks-{n}"
        with running_prometheus(data, config) as url:
            subprocess.run(
                [
                    "promtool",
                    "tsdb",
                    "create-blocks-from",
                    "rules",
                    f"--start={int(recording.start_s)}",
                    f"--end={int(recording.end_s)}",
                    f"--url={url}",
                    f"--output-dir={blocks}",
                    str(rules),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        for block in blocks.iterdir():
            shutil.move(str(block), data / block.name)
    with running_prometheus(data, config) as url:
        yield Backfilled(url, recording)


def _api(url: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=30)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, (path, params, body)
    assert body["status"] == "success", (path, params, body)
    return body


_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


def _regex_value(values: list[str]) -> str:
    """A multi-value variable as Grafana's Prometheus data source writes it into a query."""
    escaped = [
        _SPECIAL.sub(lambda m: "\\\\" + m.group(0), x.replace("\\", "\\\\\\\\")) for x in values
    ]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _interpolate(text: str, values: dict[str, str], span_s: int) -> str:
    macros = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": f"{STEP_S}s",
        "__range": f"{span_s}s",
        "__range_s": str(span_s),
        "__range_ms": str(span_s * 1000),
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in macros:
            return macros[name]
        return values.get(name, m.group(0))  # like Grafana, leave unknown names ($1) alone

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def _resolve_variables(
    board: dict[str, Any], p: Backfilled
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every variable's values, resolved in order as Grafana does: (interpolated, raw)."""
    span = int(p.recording.end_s - p.recording.start_s)
    values: dict[str, str] = {}
    raw: dict[str, list[str]] = {}
    for var in board["templating"]["list"]:
        name = var["name"]
        if var["type"] == "datasource":
            raw[name] = ["prometheus"]
            values[name] = "prometheus"
            continue
        assert var["type"] == "query", var
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"])
        assert m, var["query"]
        selector = _interpolate(m.group(1), values, span)
        body = _api(
            p.url,
            f"label/{m.group(2)}/values",
            {"match[]": selector, "start": p.recording.start_s, "end": p.recording.end_s},
        )
        raw[name] = sorted(body["data"])
        multi = var.get("multi") or var.get("includeAll")
        values[name] = _regex_value(raw[name]) if multi else (raw[name] or [""])[0]
    return values, raw


# --- against Prometheus ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_every_variable_resolves(name: str, prometheus: Backfilled) -> None:
    board = json.loads(render_all()[name])
    _, raw = _resolve_variables(board, prometheus)
    empty = [var for var, found in raw.items() if not found]
    assert empty == [], f"{name}: variables without values: {empty}"
    assert raw["namespace"] == ["inference"]
    assert raw["policy"] == ["llama-8b"]


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_every_panel_query_returns_data(name: str, prometheus: Backfilled) -> None:
    board = json.loads(render_all()[name])
    values, _ = _resolve_variables(board, prometheus)
    rec = prometheus.recording
    span = int(rec.end_s - rec.start_s)
    problems = []
    checked = 0
    for target in _targets(board):
        expr = _interpolate(target["expr"], values, span)
        assert not re.search(r"\$[a-zA-Z_]", expr), expr
        if target.get("instant"):
            body = _api(prometheus.url, "query", {"query": expr, "time": rec.end_s})
            samples = [float(s["value"][1]) for s in body["data"]["result"]]
        else:
            params = {"query": expr, "start": rec.start_s, "end": rec.end_s, "step": STEP_S}
            body = _api(prometheus.url, "query_range", params)
            samples = [float(v[1]) for s in body["data"]["result"] for v in s["values"]]
        if not any(math.isfinite(x) for x in samples):
            problems.append(f"{target['panel']} / {target['refId']}: no data from {expr}")
        checked += 1
    assert problems == []
    assert checked >= 10


def test_every_rule_expression_executes(prometheus: Backfilled) -> None:
    exprs = [(r.get("record") or r["alert"], r["expr"]) for g in _rule_groups() for r in g["rules"]]
    assert len(exprs) >= 20
    for name, expr in exprs:
        body = _api(prometheus.url, "query", {"query": expr, "time": prometheus.recording.end_s})
        assert body["data"]["resultType"] == "vector", name


def test_backfilled_rules_describe_the_run(prometheus: Backfilled) -> None:
    """The rule outputs exist over the run and hold sane values (ratios in [0, 1])."""
    end = prometheus.recording.end_s
    for record in (
        "sloscaler:slo_attainment:ratio_rate1h",
        "sloscaler:slo_attainment:ratio_rate3d",
        "sloscaler:slo_errors:ratio_rate5m",
    ):
        body = _api(prometheus.url, "query", {"query": record, "time": end})
        (series,) = body["data"]["result"]
        assert series["metric"]["policy"] == "llama-8b"
        assert 0.0 <= float(series["value"][1]) <= 1.0
    budget = _api(
        prometheus.url,
        "query",
        {"query": "sloscaler:slo_error_budget_remaining:ratio_3d", "time": end},
    )
    assert len(budget["data"]["result"]) == 1
