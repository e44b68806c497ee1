"""deploy/: every overlay renders (kubectl kustomize) and every object validates.

Built-in kinds validate against the Kubernetes 1.37 OpenAPI schemas (kubernetes-validate,
strict); SLOPolicies against the CRD's schema. ServiceMonitor, PodMonitor, PrometheusRule,
ScaledObject, Certificate and Issuer are NOT schema-validated (their CRDs are not vendored): only
apiVersion, kind, name and the spec fields sloscaler relies on are checked. The PrometheusRule's
spec goes through `promtool check rules` when promtool is on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import validate

from autoscaler.k8s.schema import CustomSchema

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ("hpa", "keda", "prometheus-adapter", "advisory")
K8S = "1.37.0"
KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool")
CRD = yaml.safe_load((ROOT / "deploy/crd/sloscaler.dev_slopolicies.yaml").read_text())

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not on PATH")

_cache: dict[str, list[dict[str, Any]]] = {}


def render(overlay: str) -> list[dict[str, Any]]:
    if overlay not in _cache:
        out = subprocess.run(
            [str(KUBECTL), "kustomize", str(ROOT / "deploy/overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        _cache[overlay] = [d for d in yaml.safe_load_all(out) if d]
    return _cache[overlay]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


CUSTOM_REQUIRED: dict[tuple[str, str], tuple[str, ...]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints"),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("selector", "podMetricsEndpoints"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("groups",),
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaleTargetRef", "triggers"),
    ("cert-manager.io/v1", "Certificate"): ("secretName", "issuerRef"),
    ("cert-manager.io/v1", "Issuer"): (),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    objs = render(overlay)
    assert objs
    slop_schema = CustomSchema(CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        what = f"{overlay}: {obj['kind']} {obj['metadata'].get('name')}"
        if key == ("sloscaler.dev/v1alpha1", "SLOPolicy"):
            assert slop_schema.validate(obj) == [], what
        elif key in CUSTOM_REQUIRED:
            assert obj["metadata"].get("name"), what
            for field in CUSTOM_REQUIRED[key]:
                assert field in obj["spec"], f"{what}: spec.{field}"
        else:
            validate(obj, K8S, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_hardening_and_flags(overlay: str) -> None:
    (dep,) = [
        d
        for d in by_kind(render(overlay), "Deployment")
        if d["metadata"]["name"] == "sloscaler-controller"
    ]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"]
        assert c["resources"]["limits"]
    (ctl,) = pod["containers"]
    assert ctl["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ctl["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--leader-elect" in ctl["args"]
    # every flag is one `sloscaler run` has
    help_text = subprocess.run(
        [str(ROOT / ".venv/bin/sloscaler"), "run", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    for arg in ctl["args"][1:]:
        assert arg.split("=")[0] in help_text, arg


def test_hpa_mode_wires_the_apiservice_to_cert_manager() -> None:
    objs = render("hpa")
    (api,) = by_kind(objs, "APIService")
    ann = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    ns, name = ann.split("/")
    (cert,) = [c for c in by_kind(objs, "Certificate") if c["metadata"]["name"] == name]
    assert cert["metadata"]["namespace"] == ns
    svc_name = api["spec"]["service"]["name"]
    assert f"{svc_name}.{ns}.svc" in cert["spec"]["dnsNames"]
    (svc,) = [s for s in by_kind(objs, "Service") if s["metadata"]["name"] == svc_name]
    assert svc["spec"]["ports"][0]["port"] == 443
    for hpa in by_kind(objs, "HorizontalPodAutoscaler"):
        (m,) = hpa["spec"]["metrics"]
        assert m["external"]["metric"]["name"] == "sloscaler_desired_replicas"
        assert m["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}


@pytest.mark.parametrize("overlay", ["keda", "prometheus-adapter"])
def test_other_metrics_apis_replace_ours(overlay: str) -> None:
    objs = render(overlay)
    assert not by_kind(objs, "APIService")
    assert not by_kind(objs, "Certificate")


def test_advisory_patches_the_policy() -> None:
    (policy,) = by_kind(render("advisory"), "SLOPolicy")
    assert policy["spec"]["mode"] == "advisory"
    assert not by_kind(render("advisory"), "HorizontalPodAutoscaler")


def test_rbac_is_least_privilege() -> None:
    objs = render("hpa")
    (role,) = by_kind(objs, "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not {"delete", "deletecollection", "patch", "watch"} & set(rule["verbs"])
    assert not [
        b for b in by_kind(objs, "ClusterRoleBinding") if b["roleRef"]["name"] == "cluster-admin"
    ]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH")
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    (rule,) = by_kind(render("hpa"), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
