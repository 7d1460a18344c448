"""The ``KERNEL_*`` variables Enterprise Gateway documents for kernel pods, as the
provisioner reads them: honoured within the operator's settings, refused beyond them,
ignored (and said so) where they mean nothing here. Pure: no cluster needed."""

from __future__ import annotations

import pytest

from broker.provisioners.pod import make_pod
from broker.provisioners.podrequest import make_request
from broker.provisioners.podsettings import KernelRequestError, PodSettings

from .controlplane import NAMESPACE

pytestmark = pytest.mark.k8s

SETTINGS = PodSettings(
    image="elyra/kernel-py:VERSION",
    namespace=NAMESPACE,
    broker="b",
    kernelspec="python_kubernetes",
    images=["jupyter/scipy-notebook:2024-10-07"],
    uids=[1001],
)
KERNEL_ID = "0b7c5d0e-1111-4222-8333-944455556666"


def pod_for(**env: str) -> dict:
    request = make_request(KERNEL_ID, env, [], SETTINGS)
    return make_pod("kernel-x", "kernel-x-connection", request, SETTINGS)


def test_cpu_and_memory_limits_are_set_apart_from_requests():
    pod = pod_for(KERNEL_CPUS="500m", KERNEL_CPUS_LIMIT="2", KERNEL_MEMORY_LIMIT="1Gi")
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m"}, "limits": {"cpu": "2", "memory": "1Gi"}}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"KERNEL_CPUS": "2", "KERNEL_CPUS_LIMIT": "1"}, "below the request"),
        ({"KERNEL_MEMORY_LIMIT": "64Gi"}, "above this broker's limit"),
        ({"KERNEL_GPUS_LIMIT": "1"}, "up to 0"),
        ({"KERNEL_NAMESPACE": "kube-system"}, "run in namespace 'kernels'"),
        ({"KERNEL_IMAGE": "evil/miner:1"}, "KERNEL_IMAGE='evil/miner:1' is not allowed"),
        ({"KERNEL_UID": "0"}, "as root"),
        ({"KERNEL_GID": "0"}, "as root"),
        ({"KERNEL_UID": "4242"}, "allowed: 1000, 1001"),
        ({"KERNEL_UID": "-1"}, "whole number"),
        ({"KERNEL_VOLUMES": '[{"name": "v", "hostPath": {"path": "/"}}]'}, "not volume defin"),
    ],
)
def test_kernel_variables_cannot_widen_the_operators_settings(env, message):
    with pytest.raises(KernelRequestError, match=message):
        make_request(KERNEL_ID, env, [], SETTINGS)


def test_namespace_image_and_uid_the_operator_allows_are_honoured():
    pod = pod_for(
        KERNEL_NAMESPACE=NAMESPACE,
        KERNEL_IMAGE="jupyter/scipy-notebook:2024-10-07",
        KERNEL_UID="1001",
    )
    assert pod["metadata"]["namespace"] == NAMESPACE
    assert pod["spec"]["containers"][0]["image"] == "jupyter/scipy-notebook:2024-10-07"
    assert pod["spec"]["securityContext"]["runAsUser"] == 1001


def test_service_account_and_pod_name_are_ignored_and_say_why():
    env = {"KERNEL_SERVICE_ACCOUNT_NAME": "admin", "KERNEL_POD_NAME": "mine"}
    request = make_request(KERNEL_ID, env, [], SETTINGS)
    assert set(request.ignored) == set(env)
    pod = make_pod("kernel-x", "kernel-x-connection", request, SETTINGS)
    assert "serviceAccountName" not in pod["spec"] and pod["metadata"]["name"] == "kernel-x"
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_working_dir_outside_the_allowed_roots_is_ignored():
    request = make_request(KERNEL_ID, {"KERNEL_WORKING_DIR": "/Users/ann/notebooks"}, [], SETTINGS)
    assert request.working_dir == "/home/kernel"
    assert "/Users/ann/notebooks" in request.ignored["KERNEL_WORKING_DIR"]
