"""Pod kernels of each language on the test control plane: the kernelspecs of
kernel_image/kernelspecs, with the fake kubelet running the locally installed kernel as the
image's command (the image's ``R``, ``deno`` and ``python`` are this machine's)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ..k8s.conftest import control_plane, pod_kernel_factory  # noqa: F401 - fixtures
from ..k8s.images import KERNEL_ENTRYPOINT, Image
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


@pytest.mark.parametrize("language", ALL)
async def test_pod_kernel_of_the_language_runs_code(
    control_plane,  # noqa: F811
    pod_kernel_factory,  # noqa: F811
    language: Language,
) -> None:
    spec = json.loads((POD_SPECS / f"{language.kernelspec}-pod" / "kernel.json").read_text())
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
