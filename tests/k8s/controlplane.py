"""The test control plane: fake API server + fake kubelet, and how clients reach it.

``ControlPlane.start()`` listens on a free port of 127.0.0.1 and writes a kubeconfig
(plain HTTP with a bearer token). ``start(tls=True)`` serves HTTPS with a freshly
generated self-signed certificate and also writes what the in-cluster loader reads: a
service-account token file and a CA file, plus the ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` values in :attr:`ControlPlane.incluster_env`.
"""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path

import yaml

from ..certificates import self_signed
from .apiserver import FakeApiServer
from .kubelet import FakeKubelet, Image, kernel_image

KERNEL_IMAGE = "kernel-broker/kernel-python:test"


class ControlPlane:
    """A fake API server and kubelet sharing one store, for one test."""

    def __init__(self, workdir: Path, network: str = "loopback", **kubelet_args) -> None:
        self.workdir = workdir
        self.token = secrets.token_hex(16)
        self.api = FakeApiServer(token=self.token)
        self.images: dict[str, Image] = {KERNEL_IMAGE: kernel_image()}
        (workdir / "pods").mkdir(parents=True, exist_ok=True)
        self.kubelet = FakeKubelet(
            self.api, workdir / "pods", self.images, network=network, **kubelet_args
        )
        self.kubeconfig = workdir / "kubeconfig"
        self.token_file = workdir / "token"
        self.ca_file = workdir / "ca.crt"
        self.incluster_env: dict[str, str] = {}

    async def start(self, tls: bool = False) -> None:
        """Start the API server (HTTP, or HTTPS for the in-cluster path) and the kubelet."""
        context = None
        if tls:
            key = self.workdir / "tls.key"
            self_signed(self.ca_file, key, "fake-apiserver")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca_file, key)
        await self.api.start(context)
        self.kubelet.start()
        self.token_file.write_text(self.token)
        self.incluster_env = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.api.port),
        }
        scheme = "https" if tls else "http"
        cluster = {"server": f"{scheme}://127.0.0.1:{self.api.port}"}
        if tls:
            cluster["certificate-authority"] = str(self.ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    async def stop(self) -> None:
        """Kill every pod process and stop serving."""
        await self.kubelet.stop()
        await self.api.stop()

    def objects(self, resource: str, namespace: str | None = None) -> list[dict]:
        """What the store holds now (pods or secrets)."""
        return self.api.store.list(resource, namespace)
