"""``sloscaler run``: one reconciliation against the fake API server through a kubeconfig."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.k8s.fake_apiserver import FakeApiServer, make_deployment
from tests.k8s.world import NS, policy, pool, write_kubeconfig


def test_run_once_reconciles_and_reports(
    tmp_path: Path, fake: FakeApiServer, api: client.ApiClient
) -> None:
    fake.store.put(make_deployment("a", NS, 2, {"app": "a"}))
    fake.store.put(policy("p", [pool("a")]))
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--once",
            "--kubeconfig",
            str(write_kubeconfig(tmp_path, fake.url)),
            "--lease-namespace",
            NS,
            "--identity",
            "cli",
            "--log-level",
            "error",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["policies"] == 1
    assert report["status_writes"] == 1
    status = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "sloscaler.dev", "v1alpha1", NS, "slopolicies", "p"
    )["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"  # no metrics source yet: hold
    assert status["pools"][0]["desiredReplicas"] == 2
    lease = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "coordination.k8s.io", "v1", NS, "leases", "sloscaler-leader"
    )
    assert "holderIdentity" not in lease["spec"]  # released on exit


def test_run_refuses_a_bad_capacity_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--once", "--capacity", "H100"])
    assert result.exit_code == 2
    assert "ACCELERATOR=RPS" in result.output
