"""``python -m bench.shutdown``: how long ``DELETE /api/kernels/{id}`` takes.

In the same run, on the same kernelspec: the broker's DELETE of an idle kernel (REST,
timed from request to response), and jupyter_client's own ``AsyncKernelManager.
shutdown_kernel()`` of an idle kernel it started itself (what a DELETE cost when the broker
called it). After each DELETE the kernel's process must be gone: the figure counts only
shutdowns that leave nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from broker.client import BrokerREST, ChannelsConnection, stream_text
from broker.processes import wait_exited

from .kernelspec import SPEC_NAME, write_kernelspec
from .targets import server_env, start_broker

_PID = "import os; print(os.getpid())"


async def broker_deletes(workdir: Path, rounds: int) -> list[float]:
    """Milliseconds per DELETE of an idle kernel that has run one cell."""
    jupyter_path = workdir / "jupyter"
    write_kernelspec(jupyter_path)
    env = server_env(jupyter_path, workdir / "runtime")
    server = start_broker(env, workdir, secrets.token_hex(8), "--pool-size=0", "--no-state")
    rest = BrokerREST(server.url, server.token)
    times = []
    try:
        for _ in range(rounds):
            kernel = (await rest.start_kernel(SPEC_NAME))["id"]
            pid = int(await _stdout(server.url, server.token, kernel, _PID))
            began = time.perf_counter()
            await rest.shutdown_kernel(kernel)
            times.append(1000 * (time.perf_counter() - began))
            if not wait_exited(pid, 0):
                raise RuntimeError(f"kernel process {pid} still runs after its DELETE")
    finally:
        server.stop()
    return times


async def _stdout(url: str, token: str, kernel: str, code: str) -> str:
    async with await ChannelsConnection.connect(url, kernel, token) as conn:
        _, outputs = await conn.execute(code)
    return stream_text(outputs)


async def jupyter_client_shutdowns(workdir: Path, rounds: int) -> list[float]:
    """Milliseconds per ``shutdown_kernel()`` of an idle kernel that answered kernel_info."""
    specs = KernelSpecManager(kernel_dirs=[str(workdir / "jupyter" / "kernels")])
    times = []
    for _ in range(rounds):
        km = AsyncKernelManager(kernel_name=SPEC_NAME, kernel_spec_manager=specs)
        await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        began = time.perf_counter()
        await km.shutdown_kernel()
        times.append(1000 * (time.perf_counter() - began))
        client.stop_channels()
    return times


def summary(name: str, times: list[float]) -> str:
    return (
        f"{name:<36} p50 {statistics.median(times):6.1f} ms   min {min(times):6.1f}   "
        f"max {max(times):6.1f}   (n={len(times)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="shutdowns of each kind")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        broker = asyncio.run(broker_deletes(Path(tmp), args.rounds))
        direct = asyncio.run(jupyter_client_shutdowns(Path(tmp), args.rounds))
    print(summary("broker DELETE /api/kernels/{id}", broker))
    print(summary("jupyter_client shutdown_kernel()", direct))


if __name__ == "__main__":
    sys.exit(main())
