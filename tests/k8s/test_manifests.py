"""Deploy manifests and rendered kernel pods pass kubernetes-validate --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from broker.provisioners import pod as manifests
from broker.provisioners.podrequest import make_request
from broker.provisioners.podsettings import KernelRequestError, PodSettings

pytestmark = pytest.mark.k8s

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version()]
SETTINGS = PodSettings(
    image="kernel-broker/kernel-python:0.1.0",
    namespace="kernels",
    broker="broker-a",
    kernelspec="python3-pod",
    resources={"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}},
    node_selector={"pool": "kernels"},
    tolerations=[{"key": "kernels", "operator": "Exists", "effect": "NoSchedule"}],
    volumes={
        "data": {
            "volume": {"persistentVolumeClaim": {"claimName": "data"}},
            "mountPath": "/data",
            "readOnly": True,
        }
    },
)


def rendered(env: dict[str, str] | None = None) -> tuple[dict, dict]:
    req = make_request("0b7c5d0e-1111-4222-8333-944455556666", env or {}, [], SETTINGS)
    pod = manifests.make_pod("kernel-x", "kernel-x-connection", req, SETTINGS)
    pod["metadata"]["uid"] = "uid-1"
    secret = manifests.make_secret("kernel-x-connection", pod, {"key": "k"})
    del pod["metadata"]["uid"]
    return pod, secret


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_deploy_manifests_are_valid(version):
    files = sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert files
    cli = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, "--quiet"]
    result = subprocess.run([*cli, *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_kernel_pod_and_secret_are_valid(version):
    pod, secret = rendered({"KERNEL_VOLUMES": "data", "KERNEL_CPUS": "2"})
    kubernetes_validate.validate(pod, version, strict=True)
    kubernetes_validate.validate(secret, version, strict=True)


def test_kernel_pod_is_locked_down():
    pod, _ = rendered()
    spec = pod["spec"]
    ctx = spec["containers"][0]["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    assert ctx["runAsNonRoot"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["readOnlyRootFilesystem"]
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_only_kernel_variables_reach_the_pod():
    pod, _ = rendered({"KERNEL_USERNAME": "bob", "AWS_SECRET_ACCESS_KEY": "x"})
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert "KERNEL_USERNAME" in names and "AWS_SECRET_ACCESS_KEY" not in names


def test_owner_label_is_sanitised_and_exact_owner_annotated():
    pod, _ = rendered({"KERNEL_USERNAME": "bob@example.com"})
    assert pod["metadata"]["labels"][manifests.LABEL_OWNER] == "bob-example.com"
    assert pod["metadata"]["annotations"][manifests.ANNOTATION_OWNER] == "bob@example.com"


@pytest.mark.parametrize(
    "env",
    [
        {"KERNEL_CPUS": "5"},
        {"KERNEL_CPUS": "0"},
        {"KERNEL_MEMORY": "lots"},
        {"KERNEL_GPUS": "1"},
        {"KERNEL_VOLUMES": "etc"},
        {"KERNEL_WORKING_DIR": "/home/kernel/../../etc"},
    ],
)
def test_out_of_bounds_requests_are_rejected(env):
    with pytest.raises(KernelRequestError):
        rendered(env)
