"""A fake pod's network: its own loopback address 127.42.x.y (the whole 127/8 is loopback
on Linux, so nothing needs configuring) or, with ``network="netns"`` (root only), a
network namespace with a veth pair (pod 10.244.n.2, node side 10.244.n.1, no default
route), so that it can reach nothing but the node."""

from __future__ import annotations

import asyncio

from .podruntime import PodRuntime


async def setup_network(rt: PodRuntime, n: int, network: str) -> None:
    """Give the pod its address, the ``n``-th of this node."""
    if network != "netns":
        rt.ip = f"127.42.{(n // 250) % 250}.{n % 250 + 1}"
        return
    rt.netns = f"kbpod{n}"
    host_if, pod_if = f"kbh{n}", f"kbp{n}"
    node_ip, rt.ip = f"10.244.{n % 250}.1", f"10.244.{n % 250}.2"
    for cmd in (
        ["ip", "netns", "add", rt.netns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if],
        ["ip", "link", "set", pod_if, "netns", rt.netns],
        ["ip", "addr", "add", f"{node_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", rt.netns, "ip", "addr", "add", f"{rt.ip}/30", "dev", pod_if],
        ["ip", "netns", "exec", rt.netns, "ip", "link", "set", pod_if, "up"],
        ["ip", "netns", "exec", rt.netns, "ip", "link", "set", "lo", "up"],
    ):
        proc = await asyncio.create_subprocess_exec(*cmd)
        await proc.wait()


async def teardown_network(rt: PodRuntime) -> None:
    """Remove the pod's network namespace, if it has one."""
    if rt.netns:
        n = rt.netns.removeprefix("kbpod")
        for cmd in (["ip", "link", "del", f"kbh{n}"], ["ip", "netns", "del", rt.netns]):
            proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.DEVNULL)
            await proc.wait()
        rt.netns = ""
