"""Thin async adapter over the Kubernetes API: pods, secrets, leases and network policies
as plain dicts.

Everything the broker asks of Kubernetes goes through :class:`KubeClient`, so the client
library (today ``kubernetes.aio`` from the official ``kubernetes`` package) is one import
away from being swapped for ``kubernetes_asyncio``, which has the same API. Objects go in
and come out as dicts: the library's model classes are never built, which keeps a watch of
hundreds of pods cheap and lets manifests stay plain data (see ``pod.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A Kubernetes API call that did not succeed; ``status`` is the HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Kubernetes API error {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class WatchExpired(KubeError):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch."""


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach the API server.

    ``in_cluster`` uses the pod's service account (``KUBERNETES_SERVICE_HOST`` and
    ``KUBERNETES_SERVICE_PORT`` plus the token and CA files); otherwise ``kubeconfig``
    (empty: ``$KUBECONFIG`` or ``~/.kube/config``) and ``context`` are used.
    """

    in_cluster: bool = False
    kubeconfig: str = ""
    context: str = ""
    token_file: str = SERVICE_TOKEN_FILENAME
    ca_file: str = SERVICE_CERT_FILENAME


async def _configuration(cfg: ClusterConfig) -> client.Configuration:
    conf = client.Configuration()
    if cfg.in_cluster:
        InClusterConfigLoader(
            token_filename=cfg.token_file, cert_filename=cfg.ca_file
        ).load_and_set(conf)
    else:
        await config.load_kube_config(
            config_file=cfg.kubeconfig or os.environ.get("KUBECONFIG") or None,
            context=cfg.context or None,
            client_configuration=conf,
        )
    return conf


async def _raise_for_status(resp: Any) -> None:
    if resp.status < 400:
        return
    text = (await resp.read()).decode(errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = {"reason": resp.reason, "message": text}
    resp.release()
    raise KubeError(resp.status, str(body.get("reason", "")), str(body.get("message", "")))


class KubeClient:
    """Pods and secrets in Kubernetes, as dicts, over one shared HTTP connection pool."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._coordination = client.CoordinationV1Api(api_client)
        self._networking = client.NetworkingV1Api(api_client)

    @classmethod
    async def connect(cls, cfg: ClusterConfig) -> KubeClient:
        """Load the configuration and open a client; close it with :meth:`close`."""
        return cls(client.ApiClient(await _configuration(cfg)))

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._api_client.close()

    async def _json(self, call: Any) -> dict[str, Any]:
        resp = await call
        await _raise_for_status(resp)
        return await resp.json()

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
        """Create a pod; returns it as the server stored it (uid, resourceVersion...)."""
        return await self._json(
            self._core.create_namespaced_pod_without_preload_content(namespace, pod)
        )

    async def create_secret(self, namespace: str, secret: dict[str, Any]) -> dict[str, Any]:
        """Create a secret; returns it as stored."""
        return await self._json(
            self._core.create_namespaced_secret_without_preload_content(namespace, secret)
        )

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        """Read one pod (raises KubeError 404 when absent)."""
        return await self._json(
            self._core.read_namespaced_pod_without_preload_content(name, namespace)
        )

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any]:
        """Read one secret (raises KubeError 404 when absent)."""
        return await self._json(
            self._core.read_namespaced_secret_without_preload_content(name, namespace)
        )

    async def patch_pod_metadata(
        self, namespace: str, name: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a pod's labels/annotations.

        With ``resourceVersion`` in ``metadata`` the patch applies only to that version of
        the pod (409 Conflict otherwise), as with an update.
        """
        return await self._json(
            self._core.patch_namespaced_pod_without_preload_content(
                name, namespace, {"metadata": metadata}, _content_type=MERGE_PATCH
            )
        )

    async def list_pods(self, namespace: str, label_selector: str) -> dict[str, Any]:
        """List pods matching a label selector; the list's metadata has its resourceVersion."""
        return await self._json(
            self._core.list_namespaced_pod_without_preload_content(
                namespace, label_selector=label_selector
            )
        )

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        """Delete a pod; False when it was already gone. Owned secrets follow it (GC)."""
        body = {"propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        return await self._delete(
            self._core.delete_namespaced_pod_without_preload_content(name, namespace, body=body)
        )

    async def delete_secret(self, namespace: str, name: str) -> bool:
        """Delete a secret; False when it was already gone."""
        return await self._delete(
            self._core.delete_namespaced_secret_without_preload_content(name, namespace)
        )

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any]:
        """Read a coordination.k8s.io/v1 Lease (raises KubeError 404 when absent)."""
        return await self._json(
            self._coordination.read_namespaced_lease_without_preload_content(name, namespace)
        )

    async def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        """Create a Lease; KubeError 409 when another replica created it first."""
        return await self._json(
            self._coordination.create_namespaced_lease_without_preload_content(namespace, lease)
        )

    async def replace_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        """Update a Lease; its ``metadata.resourceVersion`` must be current (409 otherwise)."""
        name = lease["metadata"]["name"]
        return await self._json(
            self._coordination.replace_namespaced_lease_without_preload_content(
                name, namespace, lease
            )
        )

    async def read_network_policy(self, namespace: str, name: str) -> dict[str, Any]:
        """Read a networking.k8s.io/v1 NetworkPolicy (KubeError 404 when absent)."""
        return await self._json(
            self._networking.read_namespaced_network_policy_without_preload_content(name, namespace)
        )

    async def create_network_policy(self, namespace: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Create a NetworkPolicy; returns it as stored."""
        return await self._json(
            self._networking.create_namespaced_network_policy_without_preload_content(
                namespace, policy
            )
        )

    async def replace_network_policy(
        self, namespace: str, policy: dict[str, Any]
    ) -> dict[str, Any]:
        """Update a NetworkPolicy from the resourceVersion it was read at (409 otherwise)."""
        name = policy["metadata"]["name"]
        return await self._json(
            self._networking.replace_namespaced_network_policy_without_preload_content(
                name, namespace, policy
            )
        )

    async def _delete(self, call: Any) -> bool:
        try:
            await self._json(call)
        except KubeError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def watch_pods(
        self,
        namespace: str,
        label_selector: str,
        resource_version: str,
        timeout_seconds: int,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` watch events until the server ends the stream.

        BOOKMARK events are yielded too (their object only carries a resourceVersion).
        Raises :class:`WatchExpired` when the server answers 410 (resourceVersion too old).
        """
        resp = await self._core.list_namespaced_pod_without_preload_content(
            namespace,
            label_selector=label_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
            watch=True,
            # The server ends the watch after timeout_seconds; give it a margin.
            _request_timeout=float(timeout_seconds + 30),
        )
        await _raise_for_status(resp)
        try:
            while line := await resp.content.readline():
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    cls = WatchExpired if obj.get("code") == 410 else KubeError
                    raise cls(obj.get("code", 500), obj.get("reason", ""), obj.get("message", ""))
                yield event["type"], obj
        finally:
            resp.release()
