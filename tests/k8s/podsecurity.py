"""The ``restricted`` Pod Security Standard (baseline included), as Pod Security admission
checks it on a namespace labelled ``pod-security.kubernetes.io/enforce: restricted``.

:func:`violations` returns the admission plugin's "reason (detail)" texts, in its order;
the API server refuses the pod with 403 Forbidden listing them (``admission_message``).
Checks follow https://kubernetes.io/docs/concepts/security/pod-security-standards/ for
the latest version: host namespaces, privileged, capabilities, hostPath volumes,
hostPorts, AppArmor, SELinux, /proc mount, seccomp, sysctls, volume types, privilege
escalation, running as non-root, runAsUser 0. Not checked: Windows hostProcess and the
per-version differences of older policy versions (``enforce-version`` is ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
_BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

Pod = dict[str, Any]


def _containers(pod: Pod) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [
        *(spec.get("initContainers") or []),
        *spec["containers"],
        *(spec.get("ephemeralContainers") or []),
    ]


def _named(kind: str, names: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"{kind}{'s' if len(names) > 1 else ''} {quoted}"


def _ctx(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("securityContext") or {}


def _offending(pod: Pod, bad: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [c["name"] for c in _containers(pod) if bad(c)]


def _host_namespaces(pod: Pod) -> list[str]:
    set_ = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if pod["spec"].get(k)]
    return [f"host namespaces ({', '.join(set_)})"] if set_ else []


def _privileged(pod: Pod) -> list[str]:
    names = _offending(pod, lambda c: _ctx(c).get("privileged") is True)
    if not names:
        return []
    who = _named("container", names)
    return [f"privileged ({who} must not set securityContext.privileged=true)"]


def _caps(c: dict[str, Any]) -> dict[str, Any]:
    return _ctx(c).get("capabilities") or {}


def _added_capabilities(pod: Pod, allowed: set[str]) -> list[str]:
    """One detail per container that adds a capability outside ``allowed``."""
    details = []
    for c in _containers(pod):
        extra = [a for a in _caps(c).get("add") or [] if a not in allowed]
        if extra:
            added = ", ".join(f'"{a}"' for a in extra)
            details.append(
                f'container "{c["name"]}" must not include {added} in '
                "securityContext.capabilities.add"
            )
    return details


def _baseline_capabilities(pod: Pod) -> list[str]:
    details = _added_capabilities(pod, _BASELINE_CAPS)
    return [f"non-default capabilities ({'; '.join(details)})"] if details else []


def _host_path(pod: Pod) -> list[str]:
    names = [v["name"] for v in pod["spec"].get("volumes") or [] if "hostPath" in v]
    return [f"hostPath volumes ({_named('volume', names)})"] if names else []


def _host_ports(pod: Pod) -> list[str]:
    details = [
        f'container "{c["name"]}" uses hostPort {p["hostPort"]}'
        for c in _containers(pod)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]
    return [f"hostPort ({', '.join(details)})"] if details else []


def _apparmor(pod: Pod) -> list[str]:
    bad = [
        k
        for k, v in (pod["metadata"].get("annotations") or {}).items()
        if k.startswith("container.apparmor.security.beta.kubernetes.io/")
        and not (v == "runtime/default" or v.startswith("localhost/"))
    ]
    profiles = [_ctx(pod).get("appArmorProfile")] + [
        _ctx(c).get("appArmorProfile") for c in _containers(pod)
    ]
    if bad or any(p and p.get("type") == "Unconfined" for p in profiles):
        return ["forbidden AppArmor profile"]
    return []


def _selinux(pod: Pod) -> list[str]:
    options = [_ctx(pod).get("seLinuxOptions")] + [
        _ctx(c).get("seLinuxOptions") for c in _containers(pod)
    ]
    for opt in filter(None, options):
        if opt.get("type", "") not in _SELINUX_TYPES or opt.get("user") or opt.get("role"):
            return ["seLinuxOptions"]
    return []


def _proc_mount(pod: Pod) -> list[str]:
    names = _offending(pod, lambda c: _ctx(c).get("procMount", "Default") != "Default")
    if not names:
        return []
    return [f"procMount ({_named('container', names)} must not set securityContext.procMount)"]


def _sysctls(pod: Pod) -> list[str]:
    bad = [s["name"] for s in _ctx(pod).get("sysctls") or [] if s["name"] not in _SAFE_SYSCTLS]
    return [f"forbidden sysctls ({', '.join(bad)})"] if bad else []


def _volume_types(pod: Pod) -> list[str]:
    details = []
    for v in pod["spec"].get("volumes") or []:
        kind = next((k for k in v if k != "name"), "")
        if kind not in _RESTRICTED_VOLUMES:
            details.append(f'volume "{v["name"]}" uses restricted volume type "{kind}"')
    return [f"restricted volume types ({', '.join(details)})"] if details else []


def _privilege_escalation(pod: Pod) -> list[str]:
    names = _offending(pod, lambda c: _ctx(c).get("allowPrivilegeEscalation") is not False)
    if not names:
        return []
    return [
        "allowPrivilegeEscalation != false "
        f"({_named('container', names)} must set securityContext.allowPrivilegeEscalation=false)"
    ]


def _restricted_capabilities(pod: Pod) -> list[str]:
    details = []
    no_drop = _offending(pod, lambda c: "ALL" not in (_caps(c).get("drop") or []))
    if no_drop:
        details.append(
            f'{_named("container", no_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    details += _added_capabilities(pod, {"NET_BIND_SERVICE"})
    return [f"unrestricted capabilities ({'; '.join(details)})"] if details else []


def _run_as_non_root(pod: Pod) -> list[str]:
    pod_value = _ctx(pod).get("runAsNonRoot")
    if pod_value is False:
        return ["runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"]
    explicit_false = _offending(pod, lambda c: _ctx(c).get("runAsNonRoot") is False)
    unset = _offending(pod, lambda c: _ctx(c).get("runAsNonRoot") is None)
    if explicit_false:
        who = _named("container", explicit_false)
        return [f"runAsNonRoot != true ({who} must not set securityContext.runAsNonRoot=false)"]
    if pod_value is not True and unset:
        who = f"pod or {_named('container', unset)}"
        return [f"runAsNonRoot != true ({who} must set securityContext.runAsNonRoot=true)"]
    return []


def _run_as_user(pod: Pod) -> list[str]:
    details = ["pod must not set runAsUser=0"] if _ctx(pod).get("runAsUser") == 0 else []
    names = _offending(pod, lambda c: _ctx(c).get("runAsUser") == 0)
    if names:
        details.append(f"{_named('container', names)} must not set runAsUser=0")
    return [f"runAsUser=0 ({'; '.join(details)})"] if details else []


def _seccomp(pod: Pod) -> list[str]:
    def kind(obj: dict[str, Any]) -> str | None:
        return (_ctx(obj).get("seccompProfile") or {}).get("type")

    unconfined = 'must not set securityContext.seccompProfile.type to "Unconfined"'
    if kind(pod) == "Unconfined":
        return [f"seccompProfile (pod {unconfined})"]
    bad = _offending(pod, lambda c: kind(c) == "Unconfined")
    unset = [] if kind(pod) else _offending(pod, lambda c: kind(c) is None)
    if bad:
        who = _named("container", bad)
        return [f"seccompProfile ({who} {unconfined})"]
    if unset:
        who = f"pod or {_named('container', unset)}"
        return [
            f"seccompProfile ({who} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost")'
        ]
    return []


_CHECKS = (
    _host_namespaces, _privileged, _baseline_capabilities, _host_path, _host_ports, _apparmor,
    _selinux, _proc_mount, _sysctls, _volume_types, _privilege_escalation,
    _restricted_capabilities, _run_as_non_root, _run_as_user, _seccomp,
)  # fmt: skip


def violations(pod: Pod) -> list[str]:
    """Everything in ``pod`` that the restricted profile forbids (empty: admitted)."""
    return [v for check in _CHECKS for v in check(pod)]


def admission_message(pod: Pod, found: list[str]) -> str:
    """The 403 message Pod Security admission answers with."""
    name = pod["metadata"].get("name", "")
    return f'pods "{name}" is forbidden: violates PodSecurity "restricted:latest": ' + ", ".join(
        found
    )
