"""The SLOPolicy CRD: generated from the pydantic models, structural, valid, checked in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import validate
from pydantic import ValidationError
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.crd import (
    SLOPolicySpec,
    SLOPolicyStatus,
    crd_manifest,
    render_crd_yaml,
    validation_message,
)
from autoscaler.k8s.schema import CustomSchema

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "deploy/crd/sloscaler.dev_slopolicies.yaml"
EXAMPLE = ROOT / "deploy/examples/slopolicy.yaml"


def _schema() -> dict[str, Any]:
    return dict(crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_checked_in_crd_equals_the_render() -> None:
    assert CHECKED_IN.read_text() == render_crd_yaml(), (
        "run: sloscaler crd render -o deploy/crd/sloscaler.dev_slopolicies.yaml"
    )


def test_cli_renders_the_same_yaml(tmp_path: Path) -> None:
    out = tmp_path / "crd.yaml"
    result = CliRunner().invoke(app, ["crd", "render", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == render_crd_yaml()
    result = CliRunner().invoke(app, ["crd", "render"])
    assert yaml.safe_load(result.stdout)["kind"] == "CustomResourceDefinition"


def test_crd_validates_against_the_kubernetes_schema() -> None:
    validate(yaml.safe_load(CHECKED_IN.read_text()), "1.37.0", strict=True)


def _walk(node: Any, path: str = "") -> list[str]:
    """Violations of Kubernetes' structural schema rules."""
    problems: list[str] = []
    if not isinstance(node, dict):
        return problems
    for banned in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "title"):
        if banned in node:
            problems.append(f"{path}: {banned}")
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and not isinstance(node[key], bool):
            problems.append(f"{path}: {key} must be boolean in OpenAPI v3.0")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties")
    for name, sub in (node.get("properties") or {}).items():
        problems += _walk(sub, f"{path}.{name}")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    return problems


def test_schema_is_structural() -> None:
    schema = _schema()
    assert _walk(schema) == []
    text = yaml.safe_dump(schema)
    assert "x-kubernetes-preserve-unknown-fields" not in text  # nothing needs it


def test_schema_carries_the_validation() -> None:
    spec = _schema()["properties"]["spec"]
    pool = spec["properties"]["pools"]["items"]
    assert pool["properties"]["role"]["enum"] == [
        "prefill",
        "decode",
        "aggregated",
        "expert-parallel",
    ]
    assert spec["properties"]["mode"]["enum"] == ["hpa", "direct", "advisory"]
    assert pool["properties"]["minReplicas"]["minimum"] == 0
    assert pool["properties"]["gpusPerReplica"]["minimum"] == 1
    assert set(pool["required"]) >= {"name", "role", "accelerator", "scaleTargetRef", "maxReplicas"}
    assert spec["properties"]["pools"]["x-kubernetes-list-map-keys"] == ["name"]
    assert any("maxReplicas" in r["rule"] for r in pool["x-kubernetes-validations"])
    kinds = pool["properties"]["scaleTargetRef"]["properties"]["kind"]["enum"]
    assert kinds == ["Deployment", "StatefulSet", "LeaderWorkerSet"]
    conditions = _schema()["properties"]["status"]["properties"]["conditions"]["items"]
    assert conditions["properties"]["type"]["enum"] == [
        "Ready",
        "ModelReady",
        "MetricsAvailable",
        "ScalingLimited",
    ]
    version = crd_manifest()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][:3] == [
        "Model",
        "Mode",
        "Ready",
    ]


def test_example_policy_is_valid_for_schema_and_models() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert CustomSchema(_schema()).validate(example) == []
    spec = SLOPolicySpec.model_validate(example["spec"])
    assert spec.pools[1].scale_to_zero
    assert spec.pools[1].min_replicas == 0
    assert spec.pools[0].route_backend == "llama-8b-h100"
    # round trip: what the models dump, the schema accepts
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert CustomSchema(_schema()).validate({**example, "spec": dumped}) == []


def _spec(**pool: Any) -> dict[str, Any]:
    base = {
        "name": "a",
        "role": "aggregated",
        "accelerator": "H100",
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a"},
        "maxReplicas": 4,
    }
    return {
        "model": "m",
        "objectives": {"ttftP90Ms": 500, "tpotP90Ms": 50},
        "pools": [{**base, **pool}],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minReplicas": 5}, "maxReplicas 4 < minReplicas 5"),
        ({"scaleToZero": True}, "scaleToZero needs minReplicas: 0"),
        (
            {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "LeaderWorkerSet", "name": "a"}},
            "kind LeaderWorkerSet is in leaderworkerset.x-k8s.io/v1",
        ),
        ({"role": "router"}, "spec.pools.0.role"),
        ({"gpusPerReplica": 0}, "spec.pools.0.gpusPerReplica"),
    ],
)
def test_models_refuse_what_the_schema_cannot_say(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        SLOPolicySpec.model_validate(_spec(**change))
    assert message in validation_message(err.value)


def test_duplicate_pool_names_are_refused_by_models_and_schema() -> None:
    spec = _spec()
    spec["pools"].append(dict(spec["pools"][0]))
    with pytest.raises(ValidationError) as err:
        SLOPolicySpec.model_validate(spec)
    assert "duplicate pool name 'a'" in validation_message(err.value)
    obj = {
        "apiVersion": "sloscaler.dev/v1alpha1",
        "kind": "SLOPolicy",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    assert any("Duplicate" in e.message for e in CustomSchema(_schema()).validate(obj))


def test_defaults_are_applied_by_the_models() -> None:
    spec = SLOPolicySpec.model_validate(_spec())
    assert spec.mode == "hpa"
    assert spec.objectives.attainment == 0.99
    assert spec.pools[0].min_replicas == 1
    assert spec.behavior.scale_down_stabilization_seconds == 300


def test_status_model_round_trips_through_the_schema() -> None:
    status = SLOPolicyStatus.model_validate(
        {
            "observedGeneration": 3,
            "pools": [
                {
                    "name": "a",
                    "currentReplicas": 1,
                    "readyReplicas": 1,
                    "desiredReplicas": 2,
                    "reason": "DemandForecast",
                    "predictedTTFTP90Ms": 120.5,
                }
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": "2027-01-15T08:00:00Z",
                    "reason": "Reconciled",
                    "message": "",
                }
            ],
        }
    )
    obj = {
        "apiVersion": "sloscaler.dev/v1alpha1",
        "kind": "SLOPolicy",
        "metadata": {"name": "x"},
        "spec": _spec(),
        "status": status.model_dump(by_alias=True, exclude_none=True),
    }
    assert CustomSchema(_schema()).validate(obj) == []


@pytest.mark.parametrize("name", ["hpa.yaml", "apiservice.yaml"])
def test_deploy_examples_are_valid_kubernetes(name: str) -> None:
    for doc in yaml.safe_load_all((ROOT / "deploy/examples" / name).read_text()):
        validate(doc, "1.37.0", strict=True)


def test_hpa_example_follows_the_external_metric() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/examples/hpa.yaml").read_text()))
    for hpa in docs:
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "External"
        assert metric["external"]["metric"]["name"] == "sloscaler_desired_replicas"
        assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}
        assert set(metric["external"]["metric"]["selector"]["matchLabels"]) == {"policy", "pool"}
