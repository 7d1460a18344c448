"""Pod kernels of each language on the test control plane: the kernelspecs of
kernel_image/kernelspecs, with the fake kubelet running the locally installed kernel as the
image's command (the image's ``R``, ``deno`` and ``python`` are this machine's)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from broker.client import BrokerREST
from broker.client import files as kfiles

from ..broker_process import start_broker
from ..k8s.conftest import (
    NAMESPACE,
    control_plane,  # noqa: F401 - a fixture
    pod_kernel_factory,  # noqa: F401 - a fixture
    write_kernelspec,
)
from ..k8s.images import KERNEL_ENTRYPOINT, Image
from ..k8s.test_pod_files import round_trip
from .conftest import ALL, Language

pytestmark = [pytest.mark.slow, pytest.mark.languages, pytest.mark.k8s, pytest.mark.asyncio]

POD_SPECS = Path(__file__).parent.parent.parent / "kernel_image" / "kernelspecs"


# What R (a shell script starting a binary linked to Debian's libraries) and IRkernel read.
R_RUNTIME = ["/usr", "/etc/R", "/bin", "/lib", "/lib64"]


def add_language_image(plane, language: Language, name: str) -> None:
    """Put the language's image in the fake registry: this machine's kernel as its files."""
    files = {
        "python": sys.executable,
        "python3": sys.executable,
        "/opt/kernel/entrypoint.py": KERNEL_ENTRYPOINT,
        "deno": os.path.join(os.path.dirname(sys.executable), "deno"),
    }
    runtime = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    if language.install == "r":
        files["R"] = shutil.which("R") or "R"
        runtime += [path for path in R_RUNTIME if os.path.exists(path)]
    plane.images[name] = Image(files=files, runtime=runtime)


def pod_spec(language: Language) -> dict:
    return json.loads((POD_SPECS / f"{language.kernelspec}-pod" / "kernel.json").read_text())


@pytest.mark.parametrize("language", ALL)
async def test_pod_kernel_of_the_language_runs_code(
    control_plane,  # noqa: F811
    pod_kernel_factory,  # noqa: F811
    language: Language,
) -> None:
    spec = pod_spec(language)
    config = spec["metadata"]["kernel_provisioner"]["config"]
    add_language_image(control_plane, language, config["image"])
    provisioner = {k: v for k, v in config.items() if k not in ("namespace", "resources")}
    # the test kernelspec is written anew: its own env (R's TMPDIR) is passed with the start
    provisioner["env_allowlist"] = list(spec["env"])
    km = pod_kernel_factory(control_plane, f"{language.kernelspec}-pod", **provisioner)
    await km.start_kernel(env={"KERNEL_USERNAME": "alice", **spec["env"]})
    try:
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        out: list[str] = []

        def on_output(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = await client.execute_interactive(language.hello, timeout=60, output_hook=on_output)
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert reply["content"]["status"] == "ok"
    assert "".join(out) == "hello 42\n"
    assert control_plane.objects("pods") == []


@pytest.mark.parametrize("language", ALL)
async def test_pod_kernel_of_the_language_moves_files(
    control_plane,  # noqa: F811
    language: Language,
    tmp_path: Path,
) -> None:
    """The file API through a broker whose kernelspec is the language's pod kernelspec."""
    spec = pod_spec(language)
    config = dict(spec["metadata"]["kernel_provisioner"]["config"])
    add_language_image(control_plane, language, config["image"])
    config.pop("resources")
    config.update(
        namespace=NAMESPACE,
        kubeconfig=str(control_plane.kubeconfig),
        launch_timeout=60,
        grace_seconds=2,
        env_allowlist=list(spec["env"]),
    )
    root = tmp_path / "jupyter"
    fields = ("display_name", "language", "argv", "env", "interrupt_mode")
    write_kernelspec(root / "kernels", "lang-pod", config, **{k: spec[k] for k in fields})
    # the control plane runs on this event loop: never block it while the broker talks to it
    broker = await asyncio.to_thread(
        start_broker,
        tmp_path,
        "--pool-size=0",
        "--FileLimits.chunk_bytes=65536",
        env={"JUPYTER_PATH": str(root)},
    )
    try:
        rest = BrokerREST(broker.url, broker.token)
        kernel = (await rest.start_kernel("lang-pod", {"KERNEL_USERNAME": "alice"}))["id"]
        await kfiles.upload(rest, kernel, "data.csv", b"a,b\n1,2\n3,40\n")
        events = await asyncio.to_thread(broker.execute, kernel, language.sum_csv)
        assert "".join(e["text"] for e in events if e["type"] == "stdout") == "42\n"
        await round_trip(rest, kernel)
        await kfiles.delete_file(rest, kernel, "in/data.bin")
        assert (await kfiles.list_files(rest, kernel, "in"))["entries"] == []
        await rest.shutdown_kernel(kernel)
    finally:
        await asyncio.to_thread(broker.stop)
    assert control_plane.objects("pods") == []
