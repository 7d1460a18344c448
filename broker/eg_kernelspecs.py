"""Enterprise Gateway's Kubernetes kernelspecs, read as pod kernelspecs of this broker.

An EG kernelspec names its launcher in ``metadata.process_proxy``: ``class_name`` ends in
``KubernetesProcessProxy``, ``config.image_name`` is the kernel image, and ``argv`` runs
EG's ``launch_kubernetes.py``, which templates a pod from inside the gateway's image. None
of that machinery exists here. :func:`translate` turns such a spec, as it is loaded, into
one for the ``kubernetes-provisioner``: the same image, started with the kernel's own
launcher (ipykernel's, on a copy of the mounted connection file), which needs nothing of
this project inside the image. The file on disk is not changed, and ``process_proxy``
stays in the metadata (its ``authorized_users`` still apply).
"""

from __future__ import annotations

from jupyter_client.kernelspec import KernelSpec

from .provisioners.pod import CONNECTION_FILE

PROVISIONER = "kubernetes-provisioner"
# ipykernel started on a private copy of the mounted connection file (found through
# $KERNEL_CONNECTION_FILE), whose ``ip`` is 0.0.0.0: every address of the pod. ipykernel
# rewrites its file when it holds Curve keys (it compares them as bytes with the file's
# text), which fails on the read-only mount; passing --ip would rewrite it too.
IPYKERNEL_ON_COPY = (
    "import os; from ipykernel.kernelapp import launch_new_instance as run; "
    "copy = os.path.join(os.environ.get('HOME') or '/tmp', '.kernel-connection.json'); "
    "fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600); "
    "os.write(fd, open(os.environ['KERNEL_CONNECTION_FILE'], 'rb').read()); os.close(fd); "
    "run(argv=['-f', copy])"
)
# What each language's kernel needs to run in any image that has it, and nothing else.
LANGUAGE_COMMANDS = {
    "python": ["python", "-c", IPYKERNEL_ON_COPY],
    # IRkernel never writes its connection file, and knows no CurveZMQ.
    "r": ["R", "--slave", "-e", "IRkernel::main()", "--args", CONNECTION_FILE],
}


class UntranslatableKernelSpec(ValueError):
    """An EG Kubernetes kernelspec this broker cannot run; the message says why."""


def is_eg_kubernetes(spec: KernelSpec) -> bool:
    """Whether ``spec`` is launched by EG's KubernetesProcessProxy."""
    proxy = spec.metadata.get("process_proxy")
    class_name = proxy.get("class_name", "") if isinstance(proxy, dict) else ""
    return isinstance(class_name, str) and class_name.endswith("KubernetesProcessProxy")


def _refusal(name: str, spec: KernelSpec, config: dict) -> str:
    """Why ``spec`` cannot become a pod kernelspec here, or ""."""
    if "executor_image_name" in config or "SPARK_HOME" in spec.env:
        return (
            f"Kernelspec {name!r} is an Enterprise Gateway Spark-on-Kubernetes kernel, which "
            "needs EG's Spark launcher; this broker does not run Spark drivers. Write a "
            "kernel_provisioner stanza for an image that starts the kernel itself."
        )
    if spec.language.lower() not in LANGUAGE_COMMANDS:
        return (
            f"Kernelspec {name!r} is an Enterprise Gateway Kubernetes kernel in "
            f"{spec.language!r}; only Python and R EG kernelspecs are translated. Add a "
            "metadata.kernel_provisioner stanza with the image's kernel command (see "
            "docs/kubernetes.md)."
        )
    return ""


def translate(name: str, spec: KernelSpec, plaintext: bool) -> KernelSpec:
    """``spec`` with a ``kubernetes-provisioner`` stanza in place of EG's launcher.

    ``plaintext`` turns CurveZMQ off for this spec (images with ipykernel < 7, such as
    EG's own, ignore the keys). A spec that already names a provisioner is left alone.
    Raises :class:`UntranslatableKernelSpec` when the kernel cannot run this way.
    """
    if "kernel_provisioner" in spec.metadata:
        return spec
    proxy_config = spec.metadata["process_proxy"].get("config") or {}
    refused = _refusal(name, spec, proxy_config)
    if refused:
        raise UntranslatableKernelSpec(refused)
    command = list(LANGUAGE_COMMANDS[spec.language.lower()])
    config: dict = {"command": command, "curve": not plaintext}
    if proxy_config.get("image_name"):
        config["image"] = proxy_config["image_name"]
    spec.metadata["kernel_provisioner"] = {"provisioner_name": PROVISIONER, "config": config}
    spec.metadata["supported_encryption"] = [] if plaintext else ["curve"]
    spec.argv = command  # what the pod runs; EG's launch script does not exist here
    spec.interrupt_mode = "message"  # a signal cannot reach a process in a pod
    return spec
