"""docs/cluster.md's commands that can run here, run: the overlay it makes is valid and
carries the operator's values; the token Secret it creates is the one the broker reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .deployed import broker_container, kernelspecs
from .kustomize import build, find

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "cluster.md"
VALUES = {"REGISTRY": "registry.mycompany.com/ml", "VERSION": "0.2.0", "HOST": "kernels.my.org"}


def guide_block(containing: str) -> str:
    """The guide's ```sh block that contains ``containing``."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    [block] = [b for b in blocks if containing in b]
    return block


def test_the_overlay_block_makes_a_valid_overlay_with_the_operators_values(tmp_path):
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    block = guide_block("cp -r deploy/overlays/production")
    subprocess.run(["bash", "-euc", block], cwd=tmp_path, env=VALUES, check=True)
    objects = build(tmp_path / "deploy" / "overlays" / "mine")
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.utils.latest_version(), strict=True)
    assert "example.com" not in json.dumps(objects)
    registry, version = VALUES["REGISTRY"], VALUES["VERSION"]
    assert broker_container(objects)[1]["image"] == f"{registry}/kernel-broker/broker:{version}"
    for spec in kernelspecs(objects).values():
        image = spec["metadata"]["kernel_provisioner"]["config"]["image"]
        assert image == f"{registry}/kernel-broker/kernel-python:{version}"
    ingress = find(objects, "Ingress", "kernel-broker")
    assert ingress["spec"]["rules"][0]["host"] == VALUES["HOST"]
    assert ingress["spec"]["tls"][0]["hosts"] == [VALUES["HOST"]]
    assert "kubectl apply -k deploy/overlays/mine" in GUIDE.read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_token_command_makes_the_secret_the_broker_reads(tmp_path):
    [command] = [
        line
        for line in guide_block("create secret generic").splitlines()
        if "create secret generic" in line
    ]
    out = subprocess.run(
        ["bash", "-euc", f"{command} --dry-run=client -o yaml"],
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        check=True,
    )
    secret = yaml.safe_load(out.stdout)
    [ref] = [
        v["valueFrom"]["secretKeyRef"]
        for v in broker_container(build(REPO / "deploy" / "base"))[1]["env"]
        if v["name"] == "BROKER_TOKEN"
    ]
    assert secret["metadata"]["name"] == ref["name"]
    assert secret["metadata"]["namespace"] == "kernel-broker"
    assert len(secret["data"][ref["key"]]) > 40  # 32 random bytes, hex, base64


def test_the_guide_is_linked_from_the_readme_and_the_kubernetes_page():
    assert "docs/cluster.md" in (REPO / "README.md").read_text()
    assert "(cluster.md)" in (REPO / "docs" / "kubernetes.md").read_text()
