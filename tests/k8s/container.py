"""What a container runtime does between "create" and the container's first instruction.

The fake kubelet runs this file as root (``python container.py SPEC.json``) for each pod
container when it runs strict (as root); it then becomes the container's process (exec,
same pid). In order:

1. a private mount namespace, so nothing below is seen outside the pod;
2. the image's files reachable: host paths the image maps (the interpreter, the venv,
   entrypoint files) whose parent directories the container's user could not traverse
   (``/root`` is 0700 when pyenv lives there) are bound into a 0755 tmpfs laid over the
   first such directory, read-only, as an image's files are world-readable in a container;
3. each volume bound onto itself, read-only when the pod says so (Secrets, ConfigMaps,
   ``readOnly`` mounts), so that with
4. ``readOnlyRootFilesystem`` every other mount (``/`` first) becomes read-only while the
   volumes stay as mounted (``/proc``, ``/sys`` and ``/dev`` are left, as a runtime does);
5. no_new_privs (``allowPrivilegeEscalation: false``), the supplementary groups
   (fsGroup, supplementalGroups), the group and the user; with a non-zero uid the kernel
   drops every capability on its own;
6. ``chdir`` to the working directory and exec, as that user: a file the user cannot read
   or execute fails here, as it would in a pod (exit 128 with the reason on stderr).

Not modelled: seccomp filters, cgroup limits, AppArmor/SELinux, a separate pid namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
# statvfs flags that a bind remount must repeat (the kernel refuses to clear locked ones)
_KEPT = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
)
_RUNTIME_MOUNTS = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2)."""
    args = (source.encode(), target.encode(), fstype.encode() if fstype else None)
    _check(_libc.mount(*args, flags, data.encode() or None), f"mount {target}")


def remount_read_only(target: str) -> None:
    """Make one mount point read-only in this namespace, keeping its other flags."""
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    kept = os.statvfs(target).f_flag
    for st_flag, ms_flag in _KEPT:
        if kept & st_flag:
            flags |= ms_flag
    mount("none", target, None, flags)


def _can_traverse(path: str, uid: int, groups: set[int]) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _blocking_dir(path: str, uid: int, groups: set[int]) -> str | None:
    """The outermost parent of ``path`` the user cannot traverse, or None."""
    parts = path.split("/")[1:-1]
    for i in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:i])
        if not _can_traverse(parent, uid, groups):
            return parent
    return None


def expose(paths: list[str], stage: str, uid: int, groups: set[int]) -> None:
    """Make ``paths`` reachable for ``uid`` without widening anything on the host."""
    outermost = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
    blocked = {}
    for path in outermost:
        top = _blocking_dir(path, uid, groups)
        if top is not None:
            blocked[path] = top
    if not blocked:
        return
    staged = {}
    for i, path in enumerate(blocked):
        target = os.path.join(stage, str(i))
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            with open(target, "x"):  # a mount point for a file
                pass
        mount(path, target, None, MS_BIND | MS_REC)
        staged[path] = target
    for top in sorted(set(blocked.values()), key=len):
        if not any(top.startswith(other + "/") for other in blocked.values()):
            mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for path, target in staged.items():
        if os.path.isdir(target):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "x"):  # a mount point for a file, on the fresh tmpfs
                pass
        mount(target, path, None, MS_MOVE)
        remount_read_only(path)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    # mountinfo escapes blanks and backslashes as octal
    return [p.encode().decode("unicode_escape") for p in points]


def read_only_root(volumes: set[str]) -> None:
    """Every mount read-only except the volumes and the runtime's /proc, /sys, /dev."""
    for point in _mount_points():
        if point in volumes or any(
            point == r or point.startswith(r + "/") for r in _RUNTIME_MOUNTS
        ):
            continue
        if not os.statvfs(point).f_flag & os.ST_RDONLY:
            remount_read_only(point)


def _fail(message: str) -> None:
    # as runc reports a failed exec: the reason on stderr, exit code 128
    print(f"container start failed: {message}", file=sys.stderr, flush=True)
    os._exit(128)


def run(spec: dict) -> None:
    """Set the container up as ``spec`` says and exec its command (never returns)."""
    uid, gid, groups = spec["uid"], spec["gid"], spec["groups"]
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    expose(spec["expose"], spec["stage"], uid, {gid, *groups})
    for path, read_only in spec["volumes"].items():
        mount(path, path, None, MS_BIND | MS_REC)
        if read_only:
            remount_read_only(path)
    if spec["read_only_root"]:
        read_only_root(set(spec["volumes"]))
    if spec["no_new_privs"]:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.chdir(spec["cwd"])
    except OSError as e:
        _fail(f"chdir to cwd ({spec['cwd']!r}): {e.strerror}")
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as e:
        _fail(f'exec: "{argv[0]}": {e.strerror}')


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        run(json.load(f))
