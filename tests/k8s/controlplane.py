"""The test control plane: fake API server + fake kubelet, and how clients reach it.

As a cluster does, the API server speaks only HTTPS (a self-signed CA made per control
plane) and wants a bearer token. ``ControlPlane.start()`` writes a kubeconfig (server,
CA, the broker's token) and what the in-cluster loader reads: a service-account token
file and a CA file, plus ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` in
:attr:`ControlPlane.incluster_env`.

Two users: the broker's service account (:attr:`token`, in the kubeconfig), bound to the
Role of ``deploy/base/role.yaml`` in :data:`NAMESPACE` only, and an administrator
(:attr:`admin_token`) for tests that act as the cluster operator. :data:`NAMESPACE`
enforces the ``restricted`` Pod Security Standard.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
from pathlib import Path

import yaml

from ..certificates import self_signed
from . import rbac
from .apiserver import FakeApiServer
from .images import Image, kernel_image
from .kubelet import FakeKubelet
from .podsecurity import ENFORCE_LABEL

KERNEL_IMAGE = "kernel-broker/kernel-python:test"
NAMESPACE = "kernels"


class ControlPlane:
    """A fake API server and kubelet sharing one store, for one test."""

    def __init__(
        self, workdir: Path, network: str = "loopback", namespace: str = NAMESPACE, **kubelet_args
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.admin_token = secrets.token_hex(16)
        users = {
            self.token: rbac.broker_user(namespace),
            self.admin_token: rbac.User("kubernetes-admin", admin=True),
        }
        self.api = FakeApiServer(users=users)
        self.api.namespaces[namespace] = {ENFORCE_LABEL: "restricted"}
        self.images: dict[str, Image] = {KERNEL_IMAGE: kernel_image()}
        # The node's pod directories, like /var/lib/kubelet/pods: outside pytest's 0700
        # tmp tree, so a container's non-root user can reach its volumes.
        self.node_dir = Path(tempfile.mkdtemp(prefix="kb-node-"))
        self.node_dir.chmod(0o711)
        self.kubelet = FakeKubelet(
            self.api, self.node_dir, self.images, network=network, **kubelet_args
        )
        self.kubeconfig = workdir / "kubeconfig"
        self.token_file = workdir / "token"
        self.ca_file = workdir / "ca.crt"
        self.incluster_env: dict[str, str] = {}

    @property
    def url(self) -> str:
        """The API server's address."""
        return f"https://127.0.0.1:{self.api.port}"

    def client_ssl(self) -> ssl.SSLContext:
        """An SSL context that trusts this control plane's CA (for raw HTTP clients)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def start(self) -> None:
        """Start the API server (HTTPS) and the kubelet; write the client files."""
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
        cluster = {"server": self.url, "certificate-authority": str(self.ca_file)}
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
        """Kill every pod process, stop serving and remove the node's pod directories."""
        await self.kubelet.stop()
        await self.api.stop()
        shutil.rmtree(self.node_dir, ignore_errors=True)

    def objects(self, resource: str, namespace: str | None = None) -> list[dict]:
        """What the store holds now (pods or secrets)."""
        return self.api.store.list(resource, namespace)
