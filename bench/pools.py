"""``python -m bench.pools``: warm pools against cold starts, Enterprise Gateway's included.

Measured in one run, on 127.0.0.1:
- Enterprise Gateway 3.3 cold start to kernel_info (p50), the anchor of the ratio;
- broker cold start (no pool) and pooled start to kernel_info (p50), one after another;
- N concurrent pooled starts with a pool of N (wall time until all answered kernel_info);
- broker memory per idle warm kernel, and each warm kernel's own memory;
- pod kernels on the test control plane (tests/k8s): cold against pooled start (``--pods``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from . import report
from .anchors import ANCHORS, ensure_installed
from .drivers import GatewayDriver
from .kernelspec import SPEC_NAME, write_kernelspec
from .measure import cold_starts, concurrent_starts
from .targets import Server, process_memory_mb, server_env, start_anchor, start_broker

BEGIN = "<!-- bench:pools:begin (written by python -m bench.pools) -->"
END = "<!-- bench:pools:end -->"
ROOT = Path(__file__).resolve().parent.parent
POD_SPEC = "pod"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def pool_ready(server: Server, spec: str) -> int:
    response = await AsyncHTTPClient().fetch(
        f"{server.url}/metrics", headers={"Authorization": f"token {server.token}"}
    )
    found = re.search(rf'^broker_pool_ready{{spec="{spec}"}} (\S+)$', response.body.decode(), re.M)
    return int(float(found.group(1))) if found else 0


async def wait_for_pool(server: Server, spec: str, size: int) -> float:
    """Seconds until the pool holds ``size`` kernels (its gauge is the public signal)."""
    began = time.perf_counter()
    shown = -1
    while (ready := await pool_ready(server, spec)) < size:
        if ready != shown:
            log(f"  pool {spec}: {ready}/{size} warm")
            shown = ready
        await asyncio.sleep(0.25)  # the broker offers no event for this; poll its gauge
    return time.perf_counter() - began


def kernels_rss_mb(broker_pid: int) -> list[float]:
    """Resident memory of each kernel process the broker started (its children)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{broker_pid}\n" in status.read_text():
                pids.append(int(status.parent.name))
        except OSError:
            continue  # a process that ended while we looked
    return [process_memory_mb(pid).get("rss_mb", 0.0) for pid in pids]


async def anchor_cold(workdir: Path, env: dict[str, str], starts: int) -> list[float]:
    anchor = ensure_installed(ANCHORS["eg"], log)
    server = await asyncio.to_thread(start_anchor, anchor, env, workdir, "bench-token")
    try:
        return await cold_starts(GatewayDriver(server, "v1"), starts)
    finally:
        await asyncio.to_thread(server.stop)


async def broker_figures(workdir: Path, env: dict[str, str], args: argparse.Namespace) -> dict:
    biggest = max(args.concurrent)
    server = await asyncio.to_thread(
        start_broker,
        env,
        workdir,
        "bench-token",
        f"--KernelPools.sizes={SPEC_NAME}={biggest}",
        "--KernelPools.max_concurrent_refills=2",
        "--pool-size=0",
    )
    driver = GatewayDriver(server, "v1")
    try:
        idle = server.rss_mb()["rss_mb"]
        log(f"broker: filling a pool of {biggest}")
        fill = await wait_for_pool(server, SPEC_NAME, biggest)
        full = server.rss_mb()["rss_mb"]
        kernels = kernels_rss_mb(server.proc.pid)
        out: dict[str, Any] = {
            "fill_s": fill,
            "broker_mb_per_kernel": (full - idle) / biggest,
            "kernel_rss_mb": statistics.median(kernels) if kernels else None,
        }
        log("broker: pooled starts one after another")
        out["pooled"] = await cold_starts(driver, args.starts)  # each one served by the pool
        for n in sorted(args.concurrent):
            await wait_for_pool(server, SPEC_NAME, biggest)
            log(f"broker: {n} concurrent pooled starts")
            out[f"concurrent_{n}"] = await concurrent_starts(driver, n)
        return out
    finally:
        await driver.close_all()
        await asyncio.to_thread(server.stop)


async def broker_cold(workdir: Path, env: dict[str, str], starts: int) -> list[float]:
    server = await asyncio.to_thread(start_broker, env, workdir, "bench-token", "--pool-size=0")
    try:
        return await cold_starts(GatewayDriver(server, "v1"), starts)
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def pod_cluster(
    workdir: Path, specs: list[str], image: str = "", launch_timeout: float = 60, **plane_args: Any
) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """The test control plane running (``plane_args`` go to it), and a server environment
    offering ``specs`` as pod kernelspecs of ``image`` (default: the kernel image)."""
    sys.path.insert(0, str(ROOT))
    from tests.k8s.conftest import NAMESPACE
    from tests.k8s.conftest import write_kernelspec as write_pod_spec
    from tests.k8s.controlplane import KERNEL_IMAGE, ControlPlane

    plane = ControlPlane(workdir / "cluster", **plane_args)
    await plane.start()
    try:
        config = {
            "image": image or KERNEL_IMAGE,
            "namespace": NAMESPACE,
            "kubeconfig": str(plane.kubeconfig),
            "launch_timeout": launch_timeout,
            "grace_seconds": 1,
        }
        jupyter = workdir / "pod-jupyter"
        for name in specs:
            write_pod_spec(jupyter / "kernels", name, config)
        yield plane, server_env(jupyter, workdir / "pod-runtime")
    finally:
        await plane.stop()


@contextlib.asynccontextmanager
async def pod_environment(workdir: Path) -> AsyncIterator[dict[str, str]]:
    """The test control plane running, and a server environment offering the ``pod`` spec."""
    async with pod_cluster(workdir, [POD_SPEC]) as (_, env):
        yield env


async def pod_figures(workdir: Path, starts: int) -> dict[str, list[float]]:
    """Cold and pooled pod starts through a broker against the test control plane."""
    async with pod_environment(workdir) as env:
        results = {}
        for label, sizes in (
            ("cold", "--pool-size=0"),
            ("pooled", f"--KernelPools.sizes={POD_SPEC}={starts}"),
        ):
            server = await asyncio.to_thread(start_broker, env, workdir, "bench-token", sizes)
            driver = GatewayDriver(server, "v1")
            try:
                if label == "pooled":
                    await wait_for_pool(server, POD_SPEC, starts)
                results[label] = await sequential_pod_starts(driver, POD_SPEC, starts)
            finally:
                await driver.close_all()
                await asyncio.to_thread(server.stop)
        return results


async def sequential_pod_starts(driver: GatewayDriver, spec: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        model = await driver.rest.start_kernel(spec)
        samples.append(time.perf_counter() - began)
        await driver.rest.shutdown_kernel(model["id"])
    return samples


def p50_ms(samples: list[float]) -> float:
    return 1000 * report.percentile(samples, 50)


def markdown(meta: dict[str, Any], res: dict[str, Any]) -> str:
    eg = p50_ms(res["eg_cold"]) if res.get("eg_cold") else None
    b = res["broker"]
    pooled = p50_ms(b["pooled"])
    rows = [
        ("target", "measured", "goal"),
        (
            "pooled start to kernel_info, p50",
            f"{pooled:.1f} ms (cold {p50_ms(res['broker_cold']):.0f} ms)",
            "<= 10 ms",
        ),
    ]
    if eg:
        rows.append(
            (
                "Enterprise Gateway cold start / pooled start",
                f"{eg / pooled:.0f}x (EG {eg:.0f} ms)",
                ">= 40x",
            )
        )
    for key, value in sorted(b.items()):
        if key.startswith("concurrent_"):
            n = key.split("_")[1]
            rows.append(
                (
                    f"{n} concurrent pooled starts, all ready",
                    f"{value['wall_s']:.2f} s ({value['failures']} failed)",
                    "< 1 s" if n == "20" else "-",
                )
            )
    rows.append(("broker memory per idle warm kernel", f"{b['broker_mb_per_kernel']:.2f} MB", "-"))
    if b.get("kernel_rss_mb"):
        rows.append(("each warm kernel's own memory (median)", f"{b['kernel_rss_mb']:.0f} MB", "-"))
    if res.get("pods"):
        cold, warm = p50_ms(res["pods"]["cold"]), p50_ms(res["pods"]["pooled"])
        rows.append(
            (
                "pod kernels: cold / pooled start (test control plane)",
                f"{cold / warm:.0f}x ({cold:.0f} ms / {warm:.1f} ms)",
                ">= 10x",
            )
        )
    table = "\n".join("| " + " | ".join(r) + " |" for r in [rows[0], ("---",) * 3, *rows[1:]])
    return (
        f"{BEGIN}\n### Warm pools\n\nCommand: `{meta['command']}`  \nDate: {meta['date']}  \n"
        f"Starts timed: {meta['starts']} one after another; pool filled before each burst.\n\n"
        f"{table}\n{END}"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-pools-"))
    write_kernelspec(workdir / "jupyter")
    env = server_env(workdir / "jupyter", workdir / "runtime")
    res: dict[str, Any] = {}
    if "eg" in args.anchors:
        log("Enterprise Gateway: cold starts")
        res["eg_cold"] = await anchor_cold(workdir, env, args.starts)
    log("broker: cold starts")
    res["broker_cold"] = await broker_cold(workdir, env, args.starts)
    res["broker"] = await broker_figures(workdir, env, args)
    if args.pods:
        log("pod kernels on the test control plane")
        res["pods"] = await pod_figures(workdir, args.starts)
    return res


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.pools", description=__doc__)
    parser.add_argument("--starts", type=int, default=10, help="starts timed one after another")
    parser.add_argument("--concurrent", default="20,100", help="burst sizes, comma-separated")
    parser.add_argument("--anchors", default="eg", help="'eg', or '' to skip the anchor")
    parser.add_argument("--pods", action="store_true", help="also pod kernels (test control plane)")
    report.add_markdown_option(parser, "pools")
    args = parser.parse_args(argv)
    args.concurrent = [int(n) for n in args.concurrent.split(",") if n]
    res = asyncio.run(main_async(args))
    meta = {
        "command": shlex.join(
            ["python", "-m", "bench.pools", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "starts": args.starts,
    }
    section = markdown(meta, res)
    out(section)
    if args.markdown:
        report.update_markdown(args.markdown, section, BEGIN, END)
    return res


if __name__ == "__main__":
    main()
