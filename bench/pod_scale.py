"""``python -m bench.pod_scale``: a thousand pod kernels on the test control plane.

What the API server sees of one broker serving many pod kernels, and how fast bursts of
pod starts are served, against the fake API server and kubelet of tests/k8s (real HTTPS,
the real ``kubernetes`` client, one local process per pod). In one run:

1. a warm pool of ``--burst`` pods fills; ``--burst`` concurrent pooled starts;
2. the pool refills; ``--burst`` concurrent cold starts (a kernelspec without a pool);
3. more cold starts until ``--kernels`` kernels run;
4. steady state: for ``--window`` seconds nothing happens but what a broker does by
   itself (monitoring, culling passes, Lease renewals): every API request is counted by
   verb and resource, and the open watches.

Enterprise Gateway cannot carry a thousand pods here; its rate is read from its code:
each kernel's restarter polls ``is_alive`` every ``time_to_dead`` seconds (3.0,
jupyter_client ``restarter.py``, scheduled with a ``PeriodicCallback`` in
``ioloop/restarter.py``), which reaches ``ContainerProcessProxy.poll``
(``enterprise_gateway/services/processproxies/container.py``) and
``KubernetesProcessProxy.get_container_status``
(``enterprise_gateway/services/processproxies/k8s.py``), one ``list_namespaced_pod`` with
a ``kernel_id`` label selector: one pod LIST per kernel every 3 s.

Each pod runs ``bench/tiny_kernel.py``, a real ZMQ kernel (about 10 MB each, against
50 MB for an ipykernel), not ipykernel: a thousand ipykernels do not fit beside the rest
of this machine. The kubelet runs without its strict container sandbox (user switch,
mount namespace) to spare the host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from broker.client import BrokerREST

from . import report
from .pools import log, pod_cluster, pool_ready, wait_for_pool
from .targets import Server, process_memory_mb, start_broker

BEGIN = "<!-- bench:pod_scale:begin (written by python -m bench.pod_scale) -->"
END = "<!-- bench:pod_scale:end -->"
TINY_KERNEL = Path(__file__).resolve().parent / "tiny_kernel.py"
TINY_IMAGE = "bench/tiny-kernel:1"
POOLED, COLD = "tiny", "tiny-cold"
EG_POLL_SECONDS = 3.0  # jupyter_client KernelRestarter.time_to_dead


@contextlib.asynccontextmanager
async def cluster(workdir: Path) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """The test control plane with the tiny kernel's image, and a server environment
    offering it as a pooled and an unpooled pod kernelspec."""
    specs = [POOLED, COLD]
    async with pod_cluster(
        workdir, specs, TINY_IMAGE, launch_timeout=600, strict=False, probe_interval=0.2
    ) as (plane, env):
        from tests.k8s.images import Image

        plane.images[TINY_IMAGE] = Image(
            files={"python": sys.executable, "/opt/kernel/entrypoint.py": str(TINY_KERNEL)},
            runtime=[os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)],
        )
        yield plane, env


async def filled(broker: Server, size: int, patience: float = 120) -> tuple[float, int]:
    """Seconds until the pool holds ``size`` warm pods, and how many it holds then.

    A pool start that fails is not retried until the next hand-out (the pool's rule), so
    a pod that fails (here: another test control plane on this machine holding the same
    127.42.x.y address and port) leaves the pool short: after ``patience`` seconds the
    benchmark goes on with what is warm, and says so.
    """
    began = time.perf_counter()
    try:
        await asyncio.wait_for(wait_for_pool(broker, POOLED, size), patience)
    except TimeoutError:
        ready = await pool_ready(broker, POOLED)
        log(f"  pool stuck at {ready}/{size}: a pool pod failed to start (see broker.log)")
        return time.perf_counter() - began, ready
    return time.perf_counter() - began, size


async def burst(rest: BrokerREST, spec: str, n: int) -> dict[str, Any]:
    """``n`` starts at once: wall time until all answered, and each start's time."""

    async def one() -> float:
        began = time.perf_counter()
        await rest.start_kernel(spec)
        return time.perf_counter() - began

    began = time.perf_counter()
    times = await asyncio.gather(*(one() for _ in range(n)))
    return {
        "wall_s": time.perf_counter() - began,
        "p50_s": report.percentile(times, 50),
        "p99_s": report.percentile(times, 99),
    }


async def fill(rest: BrokerREST, n: int, concurrency: int) -> float:
    """Start ``n`` more cold kernels, ``concurrency`` at a time; seconds taken."""
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async def one() -> None:
        nonlocal done
        async with slots:
            await rest.start_kernel(COLD)
        done += 1
        if done % 100 == 0:
            log(f"  {done}/{n} more kernels")

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - began


def by_verb(requests: list[tuple[str, str]]) -> Counter[str]:
    """Requests as ``VERB resource`` (a GET of a collection is a list, or a watch)."""
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    counted: Counter[str] = Counter()
    for method, path in requests:
        parts = path.strip("/").split("/")
        rest = parts[parts.index("namespaces") + 2 :] if "namespaces" in parts else parts[-1:]
        verb = verbs.get(method) or ("get" if len(rest) > 1 else "list/watch")
        counted[f"{verb} {rest[0]}"] += 1
    return counted


async def steady_state(plane: Any, brokers: list[Server], window: float) -> dict[str, Any]:
    """What the API server receives while nothing happens, for ``window`` seconds."""
    before = len(plane.api.requests)
    cpu_before = [_cpu_seconds(b.proc.pid) for b in brokers]
    began = time.perf_counter()
    await asyncio.sleep(window)  # the measurement: nothing to wait for but time
    elapsed = time.perf_counter() - began
    seen = plane.api.requests[before:]
    return {
        "seconds": elapsed,
        "requests": len(seen),
        "per_second": len(seen) / elapsed,
        "by_verb": dict(by_verb(seen)),
        "open_watches": len(plane.api.watches),
        "broker_cpu_percent": [
            100 * (_cpu_seconds(b.proc.pid) - cpu) / elapsed
            for b, cpu in zip(brokers, cpu_before, strict=True)
        ],
        "broker_rss_mb": [process_memory_mb(b.proc.pid).get("rss_mb", 0.0) for b in brokers],
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    AsyncHTTPClient.configure(None, max_clients=max(64, 2 * args.burst))
    workdir = Path(tempfile.mkdtemp(prefix="bench-pod-scale-"))
    results: dict[str, Any] = {}
    async with cluster(workdir) as (plane, env):
        flags = [
            "--pool-size=0",
            f"--KernelPools.sizes={POOLED}={args.burst}",
            f"--KernelPools.max_concurrent_refills={args.concurrency}",
            # refill once the burst is over, not during it: the fake API server and
            # kubelet share this process, and new pods would delay the burst's own requests
            "--KernelPools.refill_low_water=-1",
            "--KernelPools.refill_delay=5",
            f"--KernelRegistry.max_concurrent_starts={args.burst}",
        ]
        broker = await asyncio.to_thread(start_broker, env, workdir, "bench-token", *flags)
        replicas = [broker]
        try:
            rest = BrokerREST(broker.url, broker.token, timeout=900)
            log(f"pool of {args.burst} warm pods filling")
            results["pool_fill_s"], results["pooled_n"] = await filled(broker, args.burst)
            log(f"{results['pooled_n']} concurrent pooled starts")
            results["pooled"] = await burst(rest, POOLED, results["pooled_n"])
            results["pool_refill_s"], _ = await filled(broker, args.burst)
            log(f"{args.burst} concurrent cold starts")
            results["cold"], results["cold_n"] = await burst(rest, COLD, args.burst), args.burst
            more = args.kernels - 2 * args.burst
            log(f"{more} more cold starts, {args.concurrency} at a time")
            results["fill_s"] = await fill(rest, more, args.concurrency)
            results["kernels"] = len(await rest.list_kernels())
            results["pods"] = len(plane.objects("pods"))
            results["replica_start_s"] = []
            for n in range(2, args.replicas + 1):
                log(f"replica {n} starting (it attaches every kernel pod)")
                began = time.perf_counter()
                replica_dir = workdir / f"replica-{n}"
                replica_dir.mkdir()
                replicas.append(
                    await asyncio.to_thread(start_broker, env, replica_dir, "bench-token", *flags)
                )
                results["replica_start_s"].append(time.perf_counter() - began)
            results["listed"] = [
                len(await BrokerREST(r.url, r.token, timeout=900).list_kernels()) for r in replicas
            ]
            await asyncio.sleep(args.settle)  # let the last starts' traffic pass
            log(f"steady state: counting API requests for {args.window:g} s")
            results["steady"] = await steady_state(plane, replicas, args.window)
        finally:
            for server in replicas:
                await asyncio.to_thread(server.stop)
    results["eg_lists_per_second"] = results["kernels"] / EG_POLL_SECONDS
    return results


def table(res: dict[str, Any]) -> list[list[str]]:
    steady = res["steady"]
    verbs = ", ".join(f"{k}: {v}" for k, v in sorted(steady["by_verb"].items())) or "none"
    return [
        ["what", "figure"],
        ["kernels running (pods, warm pool included)", f"{res['kernels']} ({res['pods']})"],
        [
            "API requests per second at steady state",
            f"{steady['per_second']:.2f} ({steady['requests']} in {steady['seconds']:.0f} s: "
            f"{verbs}); open watches: {steady['open_watches']}",
        ],
        [
            "Enterprise Gateway at that size, from its code",
            f"{res['eg_lists_per_second']:.0f} pod LISTs per second (one per kernel every 3 s)",
        ],
        [
            "each broker at steady state (the first one holds the Lease)",
            "; ".join(
                f"{cpu:.1f} % of a core, {rss:.0f} MB"
                for cpu, rss in zip(
                    steady["broker_cpu_percent"], steady["broker_rss_mb"], strict=True
                )
            ),
        ],
        [
            "kernels each replica lists",
            ", ".join(str(n) for n in res["listed"]),
        ],
        [
            f"pooled starts, {res['pooled_n']} at once",
            f"all in {res['pooled']['wall_s']:.2f} s (p50 {res['pooled']['p50_s']:.2f} s, "
            f"p99 {res['pooled']['p99_s']:.2f} s)",
        ],
        [
            f"cold starts, {res['cold_n']} at once",
            f"all in {res['cold']['wall_s']:.2f} s (p50 {res['cold']['p50_s']:.2f} s, "
            f"p99 {res['cold']['p99_s']:.2f} s)",
        ],
        [
            "pool of warm pods filled / refilled",
            f"{res['pool_fill_s']:.1f} s / {res['pool_refill_s']:.1f} s",
        ],
        ["the remaining cold starts", f"{res['fill_s']:.1f} s"],
    ] + [
        [f"replica {n} started, every kernel attached", f"{seconds:.1f} s"]
        for n, seconds in enumerate(res["replica_start_s"], start=2)
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table; returns the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.pod_scale", description=__doc__)
    parser.add_argument("--kernels", type=int, default=1000, help="kernels at steady state")
    parser.add_argument("--burst", type=int, default=100, help="concurrent starts, and pool size")
    parser.add_argument("--concurrency", type=int, default=32, help="starts at once while filling")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of steady state")
    parser.add_argument(
        "--replicas", type=int, default=1, help="brokers at steady state (the others start last)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    parser.add_argument(
        "--markdown",
        type=lambda text: Path(text) if text else None,
        default=None,
        help="file whose pod_scale section is rewritten, e.g. docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = asyncio.run(run(args))
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    command = shlex.join(
        ["python", "-m", "bench.pod_scale", *(sys.argv[1:] if argv is None else argv)]
    )
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cells = table(results)
    print(report.text_table(cells))
    print(f"load average before: {load}; after: {load_after}")
    if args.markdown:
        section = (
            f"{BEGIN}\nCommand: `{command}`  \nDate: {date}  \n"
            f"Load average before the run: {load}; after: {load_after}\n\n"
            f"{report.markdown_table(cells)}\n{END}"
        )
        report.update_markdown(args.markdown, section, BEGIN, END)
    return results


if __name__ == "__main__":
    main()
