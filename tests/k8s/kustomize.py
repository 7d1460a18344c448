"""The part of kustomize that deploy/ uses, so that tests can build its kustomizations.

kustomize is not a Python package and may not be installed; ``kubectl kustomize`` is the
reference where it is (tests/k8s/test_deploy_overlays.py compares the two). Supported:
``resources`` (files and directories), ``namespace``, ``images`` (name, newName, newTag,
digest) and ``patches`` that are strategic merge patches (``path`` or inline ``patch``,
target taken from the patch's kind and name). Any other field raises, so a kustomization
cannot silently mean more here than it does to kustomize.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# x-kubernetes-patch-merge-key of the lists deploy/ patches; other lists are replaced whole.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


def build(directory: Path) -> list[Obj]:
    """The objects ``kubectl kustomize directory`` prints (order aside)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not supported here: {unknown}")
    objects: list[Obj] = []
    for resource in spec.get("resources") or []:
        path = directory / resource
        if path.is_dir():
            objects.extend(build(path))
        else:
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for patch in spec.get("patches") or []:
        _apply_patch(directory, objects, patch)
    if spec.get("namespace"):
        for obj in objects:
            _set_namespace(obj, spec["namespace"])
    for image in spec.get("images") or []:
        for container in containers(objects):
            container["image"] = _retag(container["image"], image)
    return objects


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    """The one object of this kind and name."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} objects of kind {kind} named {name!r}")
    return found[0]


def containers(objects: list[Obj]) -> list[Obj]:
    """Every container of every pod template (Deployments and the like)."""
    out = []
    for obj in objects:
        pod = (obj.get("spec") or {}).get("template", {}).get("spec") or {}
        out.extend(pod.get("initContainers") or [])
        out.extend(pod.get("containers") or [])
    return out


def merge(target: Any, patch: Any, key: str = "") -> Any:
    """``patch`` merged into ``target`` as a strategic merge patch does (null deletes)."""
    if isinstance(target, dict) and isinstance(patch, dict):
        out = dict(target)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    if isinstance(target, list) and isinstance(patch, list) and key in MERGE_KEYS:
        by = MERGE_KEYS[key]
        out = [copy.deepcopy(item) for item in target]
        added = []  # kustomize puts items new to the list first, in the patch's order
        for item in patch:
            match = [i for i, old in enumerate(out) if old.get(by) == item.get(by)]
            if match:
                out[match[0]] = merge(out[match[0]], item, key)
            else:
                added.append(copy.deepcopy(item))
        return added + out
    return copy.deepcopy(patch)


def _apply_patch(directory: Path, objects: list[Obj], patch: Obj) -> None:
    if set(patch) - {"path", "patch"}:
        raise ValueError(f"patch fields not supported here: {set(patch) - {'path', 'patch'}}")
    text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
    body = yaml.safe_load(text)
    target = find(objects, body["kind"], body["metadata"]["name"])
    merged = merge(target, body)
    target.clear()
    target.update(merged)


def _set_namespace(obj: Obj, namespace: str) -> None:
    if obj["kind"] not in CLUSTER_SCOPED:
        obj["metadata"]["namespace"] = namespace
    if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                subject["namespace"] = namespace


def _retag(image: str, rule: Obj) -> str:
    name, tag = _split(image)
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    if rule.get("digest"):
        return f"{name}@{rule['digest']}"
    if rule.get("newTag"):
        return f"{name}:{rule['newTag']}"
    return name + tag


def _split(image: str) -> tuple[str, str]:
    """``("registry/name", ":tag" or "@digest" or "")``; a port in the registry is no tag."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""
