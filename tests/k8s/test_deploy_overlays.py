"""Every kustomization in deploy/ builds, every object it makes is valid, and what the
objects name exists: the manifests docs/cluster.md applies, checked without a cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .deployed import broker_container, kernelspecs
from .kustomize import build, find

pytestmark = pytest.mark.k8s

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUSTOMIZATIONS = ["base", "overlays/production"]
VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version()]


def key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_built_object_is_valid(path, version):
    objects = build(DEPLOY / path)
    assert len({key(o) for o in objects}) == len(objects)
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_the_test_builder_agrees_with_kubectl_kustomize(path):
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / path)], capture_output=True, text=True, check=True
    )
    theirs = {key(o): o for o in yaml.safe_load_all(out.stdout) if o}
    assert theirs == {key(o): o for o in build(DEPLOY / path)}


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_what_the_deployment_names_is_in_the_build(path):
    objects = build(DEPLOY / path)
    deployment, container = broker_container(objects)
    pod = deployment["spec"]["template"]
    find(objects, "ServiceAccount", pod["spec"]["serviceAccountName"])
    for volume in pod["spec"]["volumes"]:
        if "configMap" in volume:
            data = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
            assert {i["key"] for i in volume["configMap"].get("items") or []} <= set(data)
        if "persistentVolumeClaim" in volume:
            find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    mounted = {m["name"] for m in container["volumeMounts"]}
    assert mounted == {v["name"] for v in pod["spec"]["volumes"]}
    service = find(objects, "Service", "kernel-broker")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    binding = find(objects, "RoleBinding", "kernel-broker")
    find(objects, "Role", binding["roleRef"]["name"])
    assert binding["subjects"][0]["namespace"] == deployment["metadata"]["namespace"]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_the_token_secret_is_left_to_the_operator(path):
    objects = build(DEPLOY / path)
    [token] = [
        v["valueFrom"]["secretKeyRef"]
        for v in broker_container(objects)[1]["env"]
        if v["name"] == "BROKER_TOKEN"
    ]
    assert token == {"name": "kernel-broker-token", "key": "token"}
    assert all(o["kind"] != "Secret" for o in objects), "no token may ship in the manifests"


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_kernelspec_runs_pods_in_the_brokers_namespace(path):
    objects = build(DEPLOY / path)
    namespace = broker_container(objects)[0]["metadata"]["namespace"]
    specs = kernelspecs(objects)
    assert specs
    for spec in specs.values():
        provisioner = spec["metadata"]["kernel_provisioner"]
        assert provisioner["provisioner_name"] == "kubernetes-provisioner"
        assert provisioner["config"]["in_cluster"] is True
        assert provisioner["config"]["namespace"] == namespace  # where the Role grants pods
        assert spec["interrupt_mode"] == "message"


def test_the_production_kernel_image_comes_from_the_brokers_registry():
    objects = build(DEPLOY / "overlays/production")
    broker_image = broker_container(objects)[1]["image"]
    registry = broker_image.removesuffix("/kernel-broker/broker:0.1.0")
    assert registry != broker_image
    for spec in kernelspecs(objects).values():
        image = spec["metadata"]["kernel_provisioner"]["config"]["image"]
        assert image == f"{registry}/kernel-broker/kernel-python:0.1.0"


def test_the_production_ingress_serves_the_broker_over_tls():
    objects = build(DEPLOY / "overlays/production")
    ingress = find(objects, "Ingress", "kernel-broker")
    [rule] = ingress["spec"]["rules"]
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "kernel-broker-tls"}]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    ports = find(objects, "Service", backend["name"])["spec"]["ports"]
    assert backend["port"]["name"] in {p["name"] for p in ports}


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_several_replicas_with_a_budget_that_keeps_the_others_serving(path):
    objects = build(DEPLOY / path)
    deployment, _ = broker_container(objects)
    replicas = deployment["spec"]["replicas"]
    assert replicas > 1
    budget = find(objects, "PodDisruptionBudget", "kernel-broker")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] < replicas
    # an update surges a new replica before it stops an old one
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    if any(o["kind"] == "PersistentVolumeClaim" for o in objects):  # mounted by every replica
        claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
        assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)
