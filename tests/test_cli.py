"""The ``sloscaler`` command line: the simulate contract, help texts and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app

runner = CliRunner()

SUMMARY_KEYS = {
    "scenario",
    "policy",
    "seed",
    "requests",
    "completed",
    "shed",
    "failed",
    "slo_attainment",
    "ttft_s",
    "tpot_s",
    "gpu_hours",
    "cost",
    "sim_seconds",
    "wall_seconds",
    "pools",
    "gateway",
}


def simulate_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["simulate", *args, "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_lists_commands_with_real_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("simulate", "scenarios", "catalog"):
        assert command in result.output
    sim = runner.invoke(app, ["simulate", "--help"])
    assert "--scenario" in sim.output
    assert "--trace" in sim.output
    assert "Replay a trace" in sim.output


def test_simulate_json_contract_and_reproducibility() -> None:
    a = simulate_json("--scenario", "azure-conv-h100", "--duration", "120", "--seed", "3")
    b = simulate_json("--scenario", "azure-conv-h100", "--duration", "120", "--seed", "3")
    assert a.keys() >= SUMMARY_KEYS
    assert set(a["ttft_s"]) == {"p50", "p90", "p99"}  # type: ignore[arg-type]
    pool = a["pools"][0]  # type: ignore[index]
    assert {
        "name",
        "role",
        "accelerator",
        "gpu_hours",
        "replicas_mean",
        "replicas_max",
    } <= pool.keys()
    assert a["gateway"]["scorer"] == "predicted-latency"  # type: ignore[index]
    assert a["gateway"]["latency_model"] == "learned"  # type: ignore[index]
    a.pop("wall_seconds")
    b.pop("wall_seconds")
    assert a == b  # the learned routing models too are reproducible from the seed
    assert a["seed"] == 3
    assert 0.0 <= a["slo_attainment"] <= 1.0  # type: ignore[operator]


def test_simulate_writes_report_and_json_files(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    js = tmp_path / "s.json"
    result = runner.invoke(
        app,
        ["simulate", "--duration", "60", "--report", str(report), "--json", str(js)],
    )
    assert result.exit_code == 0, result.output
    assert report.read_text().startswith("<!DOCTYPE html>")
    assert json.loads(js.read_text())["scenario"] == "azure-conv-h100"
    assert "SLO attainment" in result.stdout


def test_trace_option_accepts_native_csv(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    rows = ["arrival_s,input_tokens,output_tokens"] + [f"{i * 0.5},300,20" for i in range(40)]
    trace.write_text("\n".join(rows) + "\n")
    summary = simulate_json("--trace", str(trace))
    assert summary["requests"] == 40


def test_malformed_trace_names_file_and_line(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0.0,10,5\n0.5,ten,5\n")
    result = runner.invoke(app, ["simulate", "--trace", str(trace)])
    assert result.exit_code != 0
    assert "bad.csv:3" in result.output


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"pools": [{"name": "p", "model": "llama-3-8b", "accelerator": "h1000"}]}, "h1000"),
        (
            {
                "pools": [
                    {
                        "name": "p",
                        "model": "llama-3-8b",
                        "accelerator": "h100",
                        "min_replicas": 4,
                        "max_replicas": 2,
                    }
                ]
            },
            "max_replicas",
        ),
        ({"slo": {"ttft_ms": -5, "tpot_ms": 50}}, "slo.ttft_ms"),
    ],
)
def test_invalid_scenario_names_field_and_value(
    tmp_path: Path, patch: dict[str, object], expected: str
) -> None:
    import yaml

    base: dict[str, object] = {
        "name": "x",
        "trace": {"generate": {"kind": "poisson", "rate_rps": 1, "duration_s": 10}},
        "slo": {"ttft_ms": 500, "tpot_ms": 50},
        "pools": [{"name": "p", "model": "llama-3-8b", "accelerator": "h100"}],
    }
    base.update(patch)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base))
    result = runner.invoke(app, ["simulate", "--scenario", str(path)])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_unknown_policy_and_scenario_are_clear_errors() -> None:
    r = runner.invoke(app, ["simulate", "--policy", "nope"])
    assert r.exit_code == 2
    assert "unknown policy 'nope'" in r.output
    r = runner.invoke(app, ["simulate", "--scenario", "nope"])
    assert r.exit_code == 2
    assert "unknown scenario 'nope'" in r.output


def test_scenarios_lists_the_bundled_ones() -> None:
    r = runner.invoke(app, ["scenarios"])
    assert r.exit_code == 0
    for name in (
        "azure-conv-h100",
        "azure-code-h100",
        "mooncake-pd",
        "servegen-diurnal",
        "wide-ep",
    ):
        assert name in r.output


def test_openmetrics_file_loads_into_a_prometheus_tsdb(tmp_path: Path) -> None:
    import shutil
    import subprocess

    om = tmp_path / "run.om"
    result = runner.invoke(app, ["simulate", "--duration", "120", "--openmetrics", str(om)])
    assert result.exit_code == 0, result.output
    text = om.read_text()
    assert text.rstrip().endswith("# EOF")
    for name in (
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "inference_objective_request_total",
    ):
        assert name in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make test installs Debian's prometheus)")
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp_path / "tsdb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_explain_prints_every_stage_of_a_decision() -> None:
    r = runner.invoke(app, ["explain", "--scenario", "azure-conv-h100", "--at", "300"])
    assert r.exit_code == 0, r.output
    words = ("demand", "capacity per replica", "error budget", "stabilization", "gpu-budget")
    for word in (*words, "reason"):
        assert word in r.output
    r = runner.invoke(app, ["explain", "--policy", "static"])
    assert r.exit_code == 2
    assert "no control loop" in r.output


def test_policy_params_schema_in_docs_matches_the_code() -> None:
    from autoscaler.sim_adapter import SLOPolicyParams

    path = Path(__file__).resolve().parents[1] / "docs" / "policy-params.schema.json"
    assert json.loads(path.read_text()) == SLOPolicyParams.model_json_schema()


def test_bad_policy_params_name_the_field(tmp_path: Path) -> None:
    import yaml

    from simulator.scenario import load_scenario

    data = load_scenario("azure-conv-h100").model_dump(exclude={"source"})
    data["policy"] = {"name": "slo", "params": {"headroom": 1.5}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    r = runner.invoke(app, ["simulate", "--scenario", str(path), "--duration", "30"])
    assert r.exit_code == 2
    assert "policy.params.headroom" in r.output
    assert "1.5" in r.output


def test_simulate_starts_pools_at_the_given_replicas() -> None:
    r = runner.invoke(
        app,
        [
            "simulate",
            "--policy",
            "static",
            "--duration",
            "30",
            "--replicas",
            "llama70b-h100=2",
            "--json",
            "-",
        ],
    )
    assert r.exit_code == 0, r.output
    pools = json.loads(r.stdout)["pools"]
    assert [p["replicas_max"] for p in pools] == [2]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nosuch=2", "unknown pool 'nosuch'"),
        ("llama70b-h100=two", "is not POOL=N"),
        ("llama70b-h100=999", "outside the pool's min_replicas..max_replicas"),
    ],
)
def test_simulate_rejects_bad_replicas(value: str, message: str) -> None:
    r = runner.invoke(app, ["simulate", "--duration", "30", "--replicas", value])
    assert r.exit_code == 2
    assert message in r.output
