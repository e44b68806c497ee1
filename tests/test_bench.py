"""``sloscaler bench`` end to end on a tiny configuration, its aggregation, and the report page in
headless Chromium (no console errors, every figure rendered, a screenshot kept)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from autoscaler.bench import (
    ORACLE,
    PolicyRow,
    Task,
    acceptance,
    melange_pools,
    plan_tasks,
    restrict,
    run_task,
)
from autoscaler.cli import app
from simulator.scenario import load_scenario
from tests.tiny_scenario import tiny_scenario

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)

TINY = tiny_scenario(20.0)


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    scenario = root / "tiny.yaml"
    scenario.write_text(TINY)
    out = root / "out"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--scenarios",
            str(scenario),
            "--policies",
            "hpa-kv,slo",
            "--seeds",
            "1",
            "--workers",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_bench_writes_json_csv_and_report(bench_out: Path) -> None:
    doc = json.loads((bench_out / "results.json").read_text())
    assert {(r["policy"], r["seed"]) for r in doc["runs"]} == {("hpa-kv", 1), ("slo", 1)}
    for run in doc["runs"]:
        assert run["scenario"] == "tiny"
        assert run["requests"] > 0
        assert 0.0 <= run["slo_attainment"] <= 1.0
    (oracle,) = doc["oracle"]
    assert oracle["policy"] == ORACLE
    assert 0 < oracle["gpu_hours"] <= min(r["gpu_hours"] for r in doc["runs"]) * 1.05
    assert doc["errors"] == []
    assert doc["acceptance"][0]["scenario"] == "tiny"
    assert doc["machine"]["cpus"] >= 1
    rows = list(csv.DictReader((bench_out / "results.csv").open()))
    assert sorted(r["policy"] for r in rows) == ["hpa-kv", ORACLE, "slo"]
    page = (bench_out / "report.html").read_text()
    assert page.count(get_plotlyjs()[:500]) == 1  # plotly inlined exactly once
    assert "cdn" not in page.split("<body>", 1)[1].lower()[:2000]
    for kind in ("replicas", "latency", "scatter"):
        assert f'id="fig-0-{kind}"' in page


def test_bench_rejects_unknown_policies_and_bad_seeds(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "--scenarios", "wide-ep", "--policies", "nope"])
    assert bad.exit_code == 2
    assert "unknown policy 'nope'" in bad.output
    bad = runner.invoke(app, ["bench", "--scenarios", "wide-ep", "--seeds", ","])
    assert bad.exit_code == 2
    bad = runner.invoke(app, ["bench", "--scenarios", "nowhere"])
    assert bad.exit_code == 2
    assert "unknown scenario" in bad.output


def test_runs_are_reproducible_from_seeds(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    a = run_task(Task(str(path), "keda-queue", 7, duration_s=60.0))
    b = run_task(Task(str(path), "keda-queue", 7, duration_s=60.0))
    for out in (a, b):
        out["summary"].pop("wall_seconds")
    assert a["summary"] == b["summary"]
    assert a["series"] == b["series"]


def test_heterogeneous_scenarios_get_single_accelerator_runs() -> None:
    hetero = load_scenario("hetero-llama8b")
    assert melange_pools(hetero) == ["llama8b-mi300x", "llama8b-h100"]
    assert melange_pools(load_scenario("mooncake-pd")) == []
    only = restrict(hetero, "llama8b-h100")
    assert [p.name for p in only.pools] == ["llama8b-h100"]
    tasks = plan_tasks(["hetero-llama8b"], None, [1])
    names = {t.policy for t in tasks}
    assert {"slo", "slo@llama8b-h100", "slo@llama8b-mi300x", ORACLE, "hpa-kv"} <= names
    assert tasks[0].policy.startswith("slo")  # the heaviest runs start first
    explicit = plan_tasks(["hetero-llama8b"], ["slo"], [1, 2])
    assert sorted((t.policy, t.seed) for t in explicit) == [
        (ORACLE, 1),
        (ORACLE, 2),
        ("slo", 1),
        ("slo", 2),
    ]


def row(policy: str, attainment: float, gpu_h: float, cost: float | None = None) -> PolicyRow:
    return PolicyRow("s", policy, attainment, attainment, gpu_h, cost or gpu_h, gpu_h / 10, 1)


def test_acceptance_checks() -> None:
    rows = [
        row("slo", 0.995, 11.0),
        row("static-peak", 0.999, 15.0),  # at target, more GPU-hours: beaten
        row("hpa-kv", 0.5, 4.0),  # cheaper but far below: slo has the higher attainment
        row("keda-queue", 0.996, 10.0),  # at target and cheaper: not beaten
        row(ORACLE, 0.0, 10.0),
        row("slo@a", 0.995, 30.0, cost=40.0),
        row("slo@b", 0.9, 5.0, cost=5.0),  # cheaper but not at equal attainment
    ]
    rows[0] = PolicyRow("s", "slo", 0.995, 0.995, 11.0, 20.0, 1.1, 1)
    (check,) = acceptance(rows, {"s": 0.99})
    assert check["slo_meets_target"]
    assert check["beats_baselines_at_target"] == ["static-peak"]
    assert check["does_not_beat"] == ["keda-queue"]
    assert check["oracle_ratio_ok"]
    assert check["melange"]["best_single"] == "slo@a"
    assert check["melange"]["saving"] == pytest.approx(0.5)
    # slo below target: fewer GPU-hours than a baseline at target is no win
    missed = [PolicyRow("s", "slo", 0.97, 0.97, 1.0, 1.0, 1.0, 1), row("static-peak", 0.999, 3.0)]
    (check,) = acceptance(missed, {"s": 0.99})
    assert not check["slo_meets_target"]
    assert (check["beats_baselines_at_target"], check["does_not_beat"]) == ([], ["static-peak"])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make chromium)")
def test_report_renders_in_headless_chromium(bench_out: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    url = (bench_out / "report.html").resolve().as_uri()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    figures = re.findall(r'<div id="(fig-[^"]+)"', dom.stdout)
    assert len(figures) == 3
    chunks = re.split(r'<div id="fig-[^"]+"', dom.stdout)[1:]
    for name, chunk in zip(figures, chunks, strict=True):
        assert 'class="main-svg"' in chunk, f"{name} did not render"
    shot = tmp_path / "bench-report.png"
    snap = subprocess.run(
        [CHROMIUM, *flags, "--window-size=1280,4000", f"--screenshot={shot}", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert snap.returncode == 0, snap.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("SLOSCALER_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)


def test_melange_search_picks_the_cheapest_single_configuration_at_equal_attainment() -> None:
    from benchmarks.bench_melange import Config, grid, rows, scenario_for

    hetero = load_scenario("hetero-llama8b")
    configs = grid(hetero, [0.1, 0.3])
    assert configs[0] == Config(None)  # the mix, untuned
    assert len(configs) == 1 + 2 * 2 * 2  # pools × budget on/off × headrooms
    knobs = Config("llama8b-h100", (("headroom", 0.3), ("learn_from_attainment", False)))
    assert knobs in configs
    assert knobs.name == "slo@llama8b-h100 headroom=0.3 learn_from_attainment=False"
    sc = scenario_for(hetero, knobs)
    assert [p.name for p in sc.pools] == ["llama8b-h100"]
    assert sc.policy.params["headroom"] == 0.3
    assert sc.policy.params["learn_from_attainment"] is False
    assert scenario_for(hetero, Config(None)) == hetero

    def run(config: str, seed: int, att: float, cost: float) -> dict[str, object]:
        return {"config": config, "seed": seed, "slo_attainment": att, "gpu_hours": cost,
                "cost": cost}  # fmt: skip

    runs = [
        run("slo", 1, 0.998, 7.0), run("slo", 2, 0.996, 8.0),
        run("slo@h a", 1, 0.995, 12.0), run("slo@h a", 2, 0.991, 12.0),  # mean 0.993: qualifies
        run("slo@h b", 1, 0.999, 10.0), run("slo@h b", 2, 0.95, 10.0),  # mean 0.9745: does not
        run("slo@h c", 1, 0.999, 16.0), run("slo@h c", 2, 0.999, 16.0),
    ]  # fmt: skip
    table = rows("s", runs)
    mix = next(r for r in table if r.policy == "slo")
    assert (mix.attainment, mix.attainment_min, mix.cost, mix.seeds) == (0.997, 0.996, 7.5, 2)
    (check,) = acceptance(table, {"s": 0.99})
    assert check["melange"]["best_single"] == "slo@h a"
    assert check["melange"]["saving"] == pytest.approx(1 - 7.5 / 12.0)
