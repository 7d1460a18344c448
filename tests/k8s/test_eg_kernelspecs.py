"""Enterprise Gateway's Kubernetes kernelspecs, as EG ships them, run as pod kernels.

The kernelspecs in ``eg_kernelspecs/`` are EG's files unchanged. A "foreign image" is an
image of the fake registry holding only a Python interpreter with ipykernel: the pod's
command (``python -c <start ipykernel on a copy of the mounted file>``) uses nothing of
this project.
Such a kernel binds 0.0.0.0 on the fixed kernel ports, so these pods run in network
namespaces of their own (root only) as on a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

from broker.client import BrokerAPIError, BrokerREST, ChannelsConnection, stream_text
from broker.eg_kernelspecs import LANGUAGE_COMMANDS
from broker.offered_kernelspecs import KernelSpecNotOffered, OfferedKernelSpecManager
from broker.provisioners.kubernetes import KernelLaunchError
from broker.provisioners.pod import CONNECTION_FILE, read_secret_connection

from ..broker_process import start_broker
from .controlplane import NAMESPACE, ControlPlane
from .images import Image
from .test_pod_kernels import assert_nothing_left, execute

pytestmark = pytest.mark.k8s

EG_SPECS = Path(__file__).parent / "eg_kernelspecs"
EG_IMAGE = "elyra/kernel-py:VERSION"  # python_kubernetes's config.image_name, verbatim
IPYKERNEL_COMMAND = LANGUAGE_COMMANDS["python"]


def eg_specs(**traits) -> OfferedKernelSpecManager:
    return OfferedKernelSpecManager(kernel_dirs=[str(EG_SPECS)], **traits)


def foreign_image() -> Image:
    """An image with Python and ipykernel and nothing of this project; EG's user 1000:100."""
    return Image(
        files={"python": sys.executable},  # and no file of this repository
        runtime=[os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)],
        group=100,
    )


# -- loading: EG's file becomes a pod kernelspec ---------------------------------------


def test_eg_python_kubernetes_spec_loads_as_a_pod_kernelspec():
    spec = eg_specs().get_kernel_spec("python_kubernetes")
    stanza = spec.metadata["kernel_provisioner"]
    assert stanza["provisioner_name"] == "kubernetes-provisioner"
    assert stanza["config"] == {"image": EG_IMAGE, "command": IPYKERNEL_COMMAND, "curve": True}
    assert spec.interrupt_mode == "message" and spec.argv == IPYKERNEL_COMMAND
    assert spec.metadata["process_proxy"]["config"]["image_name"] == EG_IMAGE  # kept


def test_eg_spec_file_is_not_changed_by_loading():
    before = (EG_SPECS / "python_kubernetes" / "kernel.json").read_bytes()
    eg_specs().get_kernel_spec("python_kubernetes")
    assert (EG_SPECS / "python_kubernetes" / "kernel.json").read_bytes() == before


def test_eg_r_kubernetes_spec_starts_irkernel_on_the_mounted_file():
    config = eg_specs().get_kernel_spec("R_kubernetes").metadata["kernel_provisioner"]["config"]
    assert config["image"] == "elyra/kernel-r:VERSION"
    assert config["command"] == [
        "R",
        "--slave",
        "-e",
        "IRkernel::main()",
        "--args",
        CONNECTION_FILE,
    ]


@pytest.mark.parametrize(
    "name, why",
    [("spark_python_kubernetes", "Spark"), ("scala_kubernetes", "only Python and R")],
)
def test_eg_specs_that_need_eg_launchers_are_refused_and_not_listed(name, why):
    manager = eg_specs()
    assert name not in manager.find_kernel_specs()
    with pytest.raises(KernelSpecNotOffered, match=why):
        manager.get_kernel_spec(name)


def test_plaintext_is_allowed_only_for_the_specs_the_operator_names():
    manager = eg_specs(plaintext_kernelspecs=["R_kubernetes"])
    r_spec = manager.get_kernel_spec("R_kubernetes")
    py_spec = manager.get_kernel_spec("python_kubernetes")
    assert r_spec.metadata["kernel_provisioner"]["config"]["curve"] is False
    assert py_spec.metadata["kernel_provisioner"]["config"]["curve"] is True


# -- on the test control plane --------------------------------------------------------


@pytest.fixture
def eg_plane(netns_plane: ControlPlane) -> ControlPlane:
    """A control plane whose pods have network namespaces, and whose registry has EG's
    image name for a foreign image."""
    netns_plane.images[EG_IMAGE] = foreign_image()
    return netns_plane


def eg_kernel(plane: ControlPlane, name: str, tmp_path: Path, **ksm) -> AsyncKernelManager:
    """A kernel manager for EG's kernelspec ``name``, configured as an operator would:
    cluster and namespace in traitlets config, the kernelspec file untouched."""
    config = Config()
    config.KubernetesProvisioner.kubeconfig = str(plane.kubeconfig)
    config.KubernetesProvisioner.namespace = NAMESPACE
    config.KubernetesProvisioner.launch_timeout = 30.0
    config.KubernetesProvisioner.grace_seconds = 2
    return AsyncKernelManager(
        config=config,
        kernel_name=name,
        kernel_spec_manager=eg_specs(**ksm),
        connection_file=str(tmp_path / f"kernel-{uuid.uuid4()}.json"),
    )


@contextlib.asynccontextmanager
async def running(km: AsyncKernelManager, plane: ControlPlane) -> AsyncIterator[Any]:
    """The started kernel's client; then the kernel is shut down and nothing is left."""
    await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=30)
        yield client
    finally:
        client.stop_channels()
        await km.shutdown_kernel()
    assert_nothing_left(plane)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_eg_kernelspec_runs_in_a_foreign_image_over_curve(eg_plane, tmp_path):
    km = eg_kernel(eg_plane, "python_kubernetes", tmp_path)
    async with running(km, eg_plane) as client:
        container = eg_plane.objects("pods", NAMESPACE)[0]["spec"]["containers"][0]
        assert container["image"] == EG_IMAGE and container["command"] == IPYKERNEL_COMMAND
        assert km.get_connection_info()["curve_publickey"]
        reply, out = await execute(client, "import os; print(os.environ['POD_IP'], 6 * 7)")
        assert "".join(out).split() == [km.ip, "42"]


# A kernel that does not know CurveZMQ (ipykernel < 7, as in EG's kernel-py): it reads the
# connection file without the curve keys and binds plain ZMQ sockets.
NO_CURVE = (
    "import json, os, sys;"
    "info = json.load(open(os.environ['KERNEL_CONNECTION_FILE']));"
    "[info.pop(k, None) for k in ('curve_publickey', 'curve_secretkey')];"
    "plain = os.path.join(os.environ['HOME'], 'plain.json');"
    "json.dump(info, open(plain, 'w'));"
    "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', plain])"
)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_kernel_without_curve_fails_at_once_saying_what_to_do(eg_plane, pod_kernel_factory):
    km = pod_kernel_factory(eg_plane, image=EG_IMAGE, command=["python", "-c", NO_CURVE])
    with pytest.raises(KernelLaunchError) as failure:
        await asyncio.wait_for(km.start_kernel(env={"KERNEL_USERNAME": "alice"}), 25)
    message = str(failure.value)
    assert "does not speak CurveZMQ" in message and "plaintext_kernelspecs" in message
    assert_nothing_left(eg_plane)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_eg_kernelspec_allowed_plaintext_runs_without_curve_keys(eg_plane, tmp_path):
    plain = ["python_kubernetes"]
    km = eg_kernel(eg_plane, "python_kubernetes", tmp_path, plaintext_kernelspecs=plain)
    async with running(km, eg_plane) as client:
        assert "curve_publickey" not in km.get_connection_info()
        secret = read_secret_connection(eg_plane.objects("secrets", NAMESPACE)[0])
        assert secret["key"] and "curve_secretkey" not in secret
        reply, out = await execute(client, "print('plain')")
        assert out == ["plain\n"]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_broker_offers_an_eg_kernelspec_directory_unchanged(eg_plane, tmp_path):
    root = tmp_path / "jupyter"
    root.mkdir()
    (root / "kernels").symlink_to(EG_SPECS, target_is_directory=True)
    broker = await asyncio.to_thread(
        start_broker,
        tmp_path,
        "--pool-size=0",
        f"--KubernetesProvisioner.kubeconfig={eg_plane.kubeconfig}",
        f"--KubernetesProvisioner.namespace={NAMESPACE}",
        env={"JUPYTER_PATH": str(root)},
    )
    try:
        rest = BrokerREST(broker.url, broker.token)
        specs = (await rest.kernelspecs())["kernelspecs"]
        assert {"python_kubernetes", "r_kubernetes"} <= set(specs)  # jupyter lowercases names
        assert "spark_python_kubernetes" not in specs
        with pytest.raises(BrokerAPIError) as refused:
            await rest.start_kernel("python_kubernetes", {"KERNEL_UID": "0"})
        assert refused.value.status == 400 and "as root" in str(refused.value)
        model = await rest.start_kernel("python_kubernetes", {"KERNEL_CPUS": "500m"})
        async with await ChannelsConnection.connect(broker.url, model["id"], broker.token) as c:
            _, outputs = await c.execute("print('from EG spec')")
            assert stream_text(outputs) == "from EG spec\n"
        await rest.shutdown_kernel(model["id"])
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    assert_nothing_left(eg_plane)


def r_image() -> Image:
    """An image with R and IRkernel (this machine's, when it has them)."""
    if not shutil.which("R") or not Path("/usr/lib/R/site-library/IRkernel").is_dir():
        pytest.skip("R with IRkernel is not installed here")
    return Image(files={"R": "/usr/bin/R"}, runtime=["/usr/lib/R", "/usr/share/R", "/etc/R"])


@pytest.mark.slow
@pytest.mark.asyncio
async def test_eg_r_kubernetes_spec_runs_irkernel_in_plain_text(netns_plane, tmp_path):
    netns_plane.images["elyra/kernel-r:VERSION"] = r_image()
    plain = ["R_kubernetes"]
    km = eg_kernel(netns_plane, "R_kubernetes", tmp_path, plaintext_kernelspecs=plain)
    async with running(km, netns_plane) as client:
        reply, out = await execute(client, "cat(Sys.getenv('POD_IP'), 6 * 7)")
        assert reply["status"] == "ok" and "".join(out).split() == [km.ip, "42"]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_irkernel_without_plaintext_allowed_fails_saying_it_has_no_curve(
    netns_plane, tmp_path
):
    netns_plane.images["elyra/kernel-r:VERSION"] = r_image()
    km = eg_kernel(netns_plane, "R_kubernetes", tmp_path)
    with pytest.raises(KernelLaunchError, match="does not speak CurveZMQ"):
        await asyncio.wait_for(km.start_kernel(env={"KERNEL_USERNAME": "alice"}), 25)
    assert_nothing_left(netns_plane)
