"""``python -m bench.shutdown``: how long ``DELETE /api/kernels/{id}`` takes.

In the same run, on the same kernelspec, round after round (so that a change in the
machine's load hits every kind alike): the broker's DELETE of an idle kernel that has run
one cell (REST, timed from request to response), and jupyter_client's own
``AsyncKernelManager.shutdown_kernel()`` of an idle kernel it started itself (what a
DELETE cost when the broker called it). ``--baseline DIR`` adds the DELETE of a broker run
from another checkout (``PYTHONPATH=DIR``), e.g. the commit before a change. After each
DELETE the kernel's process must be gone: the figures count only shutdowns that leave
nothing behind. Last, what the kernel itself takes: from shutdown_request to its
shutdown_reply and to the exit of its process (awaited on a pidfd).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from broker.client import BrokerREST, ChannelsConnection, stream_text
from broker.processes import exited, wait_exited

from .kernelspec import SPEC_NAME, write_kernelspec
from .targets import Server, server_env, start_broker

DIRECT = "jupyter_client shutdown_kernel()"
REPLY = "ipykernel: request to shutdown_reply"
EXIT = "ipykernel: request to process exit"


async def delete_once(server: Server) -> float:
    """Milliseconds of one DELETE of an idle kernel that has run a cell."""
    rest = BrokerREST(server.url, server.token)
    kernel = (await rest.start_kernel(SPEC_NAME))["id"]
    async with await ChannelsConnection.connect(server.url, kernel, server.token) as conn:
        _, outputs = await conn.execute("import os; print(os.getpid())")
    pid = int(stream_text(outputs))
    began = time.perf_counter()
    await rest.shutdown_kernel(kernel)
    elapsed = 1000 * (time.perf_counter() - began)
    if not wait_exited(pid, 0):
        raise RuntimeError(f"kernel process {pid} still runs after its DELETE")
    return elapsed


@contextlib.asynccontextmanager
async def ready_kernel(
    specs: KernelSpecManager,
) -> AsyncIterator[tuple[AsyncKernelManager, AsyncKernelClient]]:
    """A kernel of jupyter_client's own that answered kernel_info, and its client."""
    km = AsyncKernelManager(kernel_name=SPEC_NAME, kernel_spec_manager=specs)
    await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield km, client
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)  # nothing left if the measurement failed


async def shutdown_once(specs: KernelSpecManager) -> float:
    """Milliseconds of one ``shutdown_kernel()`` of an idle kernel that answered kernel_info."""
    async with ready_kernel(specs) as (km, _):
        began = time.perf_counter()
        await km.shutdown_kernel()
        return 1000 * (time.perf_counter() - began)


async def reply_and_exit_once(specs: KernelSpecManager) -> tuple[float, float]:
    """Milliseconds from shutdown_request to an idle kernel's shutdown_reply, and to the
    exit of its process: the floor under any shutdown that lets the kernel finish."""
    async with ready_kernel(specs) as (km, client):
        pid = km.provisioner.pid
        began = time.perf_counter()
        client.control_channel.send(client.session.msg("shutdown_request", {"restart": False}))
        await client.control_channel.get_msg(timeout=30)
        replied = 1000 * (time.perf_counter() - began)
        await exited(pid)
        return replied, 1000 * (time.perf_counter() - began)


async def measure(workdir: Path, rounds: int, baseline: str) -> dict[str, list[float]]:
    """Milliseconds per shutdown of each kind, ``rounds`` of each, interleaved."""
    jupyter_path = workdir / "jupyter"
    write_kernelspec(jupyter_path)
    env = server_env(jupyter_path, workdir / "runtime")
    checkouts = {"broker DELETE /api/kernels/{id}": env}
    if baseline:
        checkouts[f"broker DELETE, {baseline}"] = {**env, "PYTHONPATH": baseline}
    servers: dict[str, Server] = {}
    try:
        for n, (name, server_environment) in enumerate(checkouts.items()):
            (workdir / str(n)).mkdir()
            token = secrets.token_hex(8)
            servers[name] = start_broker(
                server_environment, workdir / str(n), token, "--pool-size=0"
            )
        specs = KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
        times: dict[str, list[float]] = {name: [] for name in [*servers, DIRECT, REPLY, EXIT]}
        for _ in range(rounds):
            for name, server in servers.items():
                times[name].append(await delete_once(server))
            times[DIRECT].append(await shutdown_once(specs))
            replied, gone = await reply_and_exit_once(specs)
            times[REPLY].append(replied)
            times[EXIT].append(gone)
        return times
    finally:
        for server in servers.values():
            server.stop()


def summary(name: str, times: list[float]) -> str:
    return (
        f"{name:<36} p50 {statistics.median(times):6.1f} ms   min {min(times):6.1f}   "
        f"max {max(times):6.1f}   (n={len(times)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="shutdowns of each kind")
    parser.add_argument(
        "--baseline", default="", help="a checkout whose broker's DELETE is timed too"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(measure(Path(tmp), args.rounds, args.baseline))
    for name, values in times.items():
        print(summary(name, values))


if __name__ == "__main__":
    sys.exit(main())
