"""Fixtures: a test control plane per test, and kernel managers for pod kernelspecs."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from broker.provisioners.cluster import close_clusters

from .controlplane import KERNEL_IMAGE, NAMESPACE, ControlPlane

__all__ = ["KERNEL_IMAGE", "NAMESPACE", "ControlPlane"]


@pytest_asyncio.fixture
async def control_plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    """A fake API server and kubelet on 127.0.0.1, with a kubeconfig for them."""
    plane = ControlPlane(tmp_path / "cluster")
    await plane.start()
    yield plane
    await close_clusters()
    await plane.stop()


@pytest_asyncio.fixture
async def netns_plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    """A control plane whose pods get network namespaces of their own (root only)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    plane = ControlPlane(tmp_path / "netns-cluster", network="netns")
    await plane.start()
    yield plane
    await close_clusters()
    await plane.stop()


def write_kernelspec(kernels_dir: Path, name: str, config: dict[str, Any], **spec: Any) -> None:
    """A pod kernelspec (as in kernel_image/kernelspecs) with this provisioner config."""
    path = kernels_dir / name
    path.mkdir(parents=True, exist_ok=True)
    body = {
        "display_name": f"Python 3 ({name})",
        "language": "python",
        "interrupt_mode": "message",
        "argv": ["python", "/opt/kernel/entrypoint.py"],
        "env": {},
        "metadata": {
            "supported_encryption": ["curve"],
            "kernel_provisioner": {"provisioner_name": "kubernetes-provisioner", "config": config},
        },
        **spec,
    }
    (path / "kernel.json").write_text(json.dumps(body))


@pytest.fixture
def pod_kernel_factory(tmp_path: Path) -> Callable[..., AsyncKernelManager]:
    """Make a kernel manager for a pod kernelspec on a given control plane (not started)."""
    kernels = tmp_path / "kernelspecs"

    def make(plane: ControlPlane, name: str = "pod", **config: Any) -> AsyncKernelManager:
        base = {
            "image": KERNEL_IMAGE,
            "namespace": NAMESPACE,
            "kubeconfig": str(plane.kubeconfig),
            "launch_timeout": 30,
            "grace_seconds": 2,
        }
        write_kernelspec(kernels, name, {**base, **config})
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        return AsyncKernelManager(
            kernel_name=name,
            kernel_spec_manager=ksm,
            connection_file=str(tmp_path / f"kernel-{uuid.uuid4()}.json"),
        )

    return make


@pytest.fixture
def pod_kernel(
    control_plane: ControlPlane, pod_kernel_factory: Callable[..., AsyncKernelManager]
) -> Callable[..., AsyncKernelManager]:
    """Make a kernel manager for a pod kernelspec on ``control_plane`` (not started)."""
    return lambda name="pod", **config: pod_kernel_factory(control_plane, name, **config)
