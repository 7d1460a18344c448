"""``python -m bench.files_languages``: file API throughput per kernel language.

One broker, one kernel per installed kernelspec (python3, the anchor, then bash, deno and
ir where installed: ``kernel-broker kernels install bash deno r``). Round after round, so
that a change in the machine's load hits every language alike, each kernel gets an upload
(``PUT``) and a download (``GET``) of the same random file; the bytes that come back are
checked. Prints MB/s (p50 over the rounds) per language and direction, and the ratio to
Python's in the same run; how far the broker's resident memory rose during a language's
upload and download (its peak, VmHWM, reset before each pair: the most over the rounds);
and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from broker.client import BrokerREST
from broker.client import files as kfiles

from .targets import process_memory_mb, start_broker

ANCHOR = "python3"
LANGUAGES = ("bash", "deno", "ir")


def installed(names: tuple[str, ...]) -> list[str]:
    found = KernelSpecManager().find_kernel_specs()
    return [name for name in names if name in found]


def reset_peak(pid: int) -> float:
    """Reset a process's peak resident memory to its current one; that, in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return process_memory_mb(pid)["rss_mb"]


async def measure(url: str, token: str, pid: int, specs: list[str], size: int, rounds: int) -> dict:
    """MB/s of each spec's uploads and downloads, ``rounds`` of each, interleaved (the
    kernels share the broker's working directory: each has a file name of its own), and
    the broker's peak memory growth (MB) during each pair."""
    rest = BrokerREST(url, token)
    kernels = {spec: (await rest.start_kernel(spec))["id"] for spec in specs}
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for spec, kernel in kernels.items():
                data = os.urandom(size)
                start = reset_peak(pid)
                began = time.perf_counter()
                await kfiles.upload(rest, kernel, f"bench-{spec}.bin", data)
                put = time.perf_counter() - began
                began = time.perf_counter()
                got = await kfiles.download(rest, kernel, f"bench-{spec}.bin")
                get = time.perf_counter() - began
                if got != data:
                    raise RuntimeError(f"{spec}: the download differs from the upload")
                rates.setdefault((spec, "PUT"), []).append(size / put / 1e6)
                rates.setdefault((spec, "GET"), []).append(size / get / 1e6)
                peak = process_memory_mb(pid)["peak_rss_mb"] - start
                rates.setdefault((spec, "RSS"), []).append(peak)
                await kfiles.delete_file(rest, kernel, f"bench-{spec}.bin")
    finally:
        for kernel in kernels.values():
            await rest.shutdown_kernel(kernel)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=16, help="file size in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="transfers of each kind")
    args = parser.parse_args(argv)
    specs = [ANCHOR, *installed(LANGUAGES)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        token = secrets.token_hex(8)
        server = start_broker(dict(os.environ), Path(tmp), token, "--pool-size=0")
        try:
            rates = asyncio.run(
                measure(server.url, token, server.proc.pid, specs, args.mib << 20, args.rounds)
            )
        finally:
            server.stop()
    print(f"{args.mib} MiB file, {args.rounds} rounds, chunks of 4 MiB (the default; Deno 2 MiB)")
    for direction in ("PUT", "GET"):
        anchor = statistics.median(rates[(ANCHOR, direction)])
        for spec in specs:
            p50 = statistics.median(rates[(spec, direction)])
            print(f"{direction} {spec:<8} {p50:7.1f} MB/s   {p50 / anchor:5.2f} x python3")
    for spec in specs:
        print(f"broker peak RSS +{max(rates[(spec, 'RSS')]):5.1f} MB during {spec}'s transfers")
    before, after = (" ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg()))
    print(f"load average before {before}; after {after}")


if __name__ == "__main__":
    main()
