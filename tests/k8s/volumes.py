"""Pod volumes laid out on the node as a real kubelet lays them out.

- Secret and ConfigMap volumes: a directory of files owned by root (uid 0, gid 0) with the
  declared mode (``items[].mode``, else ``defaultMode``, else 0644). With the pod's
  ``fsGroup`` the group becomes fsGroup, files gain group read (``| 0440``, the kubelet's
  mask for read-only volumes, kubernetes/kubernetes#57923) and directories gain setgid and
  group read/execute. Without fsGroup a non-root container reads such a file only if its
  mode lets "others" read.
- emptyDir: mode 0777 (the kubelet chmods it so regardless of umask); with fsGroup the
  group is fsGroup and setgid is set, so files created there stay in the pod's group.
- other volume types (PVCs and the like): an empty directory owned by root, 0755.

Ownership needs root; without it (``strict=False``) files belong to the test's user, and
the modes are still applied: then the container, running as that same user, reads any of
them, which is the leniency strict mode removes.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

DEFAULT_MODE = 0o644
# Kubernetes' volume ownership masks (pkg/volume/volume_linux.go)
_RO_MASK = 0o440
_EXEC_MASK = 0o110
SOURCES = {"secret": "secrets", "configMap": "configmaps"}


class MountError(Exception):
    """The volume cannot be set up (FailedMount); the message is the kubelet's."""


def source_name(kind: str, source: dict[str, Any]) -> str:
    """The object a Secret or ConfigMap volume reads."""
    return source["secretName"] if kind == "secret" else source["name"]


def payload(kind: str, source: dict[str, Any], obj: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
    """Files (relative path -> content and mode) of a Secret or ConfigMap volume."""
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    if kind == "configMap":
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    default = source.get("defaultMode", DEFAULT_MODE)
    items = source.get("items")
    if not items:
        return {key: (value, default) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            meta = obj["metadata"]
            raise MountError(
                f"couldn't find key {item['key']} in Secret {meta['namespace']}/{meta['name']}"
                if kind == "secret"
                else f"configmap references non-existent config key: {item['key']}"
            )
        files[item["path"]] = (data[item["key"]], item.get("mode", default))
    return files


def _own(path: Path, mode: int, fs_group: int | None, strict: bool, is_dir: bool) -> None:
    if fs_group is not None:
        mode |= _RO_MASK | (_EXEC_MASK | stat.S_ISGID if is_dir else 0)
    if strict:
        os.chown(path, 0, fs_group if fs_group is not None else 0)
    path.chmod(mode)


def write_files(
    host: Path, files: dict[str, tuple[bytes, int]], fs_group: int | None, strict: bool
) -> None:
    """A read-only volume's files, owned by root (and fsGroup), with their modes."""
    host.mkdir(parents=True, exist_ok=True)
    for rel, (content, mode) in files.items():
        path = host / rel
        for parent in reversed(path.relative_to(host).parents):
            if str(parent) != ".":
                (host / parent).mkdir(exist_ok=True)
                _own(host / parent, 0o755, fs_group, strict, is_dir=True)
        path.write_bytes(content)
        _own(path, mode, fs_group, strict, is_dir=False)
    _own(host, 0o755, fs_group, strict, is_dir=True)


def empty_dir(host: Path, fs_group: int | None, strict: bool) -> None:
    """An emptyDir: world-writable, in fsGroup's group when the pod has one."""
    host.mkdir(parents=True, exist_ok=True)
    mode = 0o777 | (stat.S_ISGID if fs_group is not None else 0)
    if strict:
        os.chown(host, 0, fs_group if fs_group is not None else 0)
    host.chmod(mode)


def plain_dir(host: Path, strict: bool) -> None:
    """A volume type the fake cannot provide (PVC and the like): an empty root-owned dir."""
    host.mkdir(parents=True, exist_ok=True)
    if strict:
        os.chown(host, 0, 0)
    host.chmod(0o755)
