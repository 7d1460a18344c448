"""``python -m bench.chat_upload``: a file uploaded the chat page's way, against the anchor.

The chat page uploads into its session's kernel with ``PUT /api/chat/{id}/files/{name}``
on ``llm-agent serve``, which passes the body on to the broker's file API as it arrives.
Each round uploads the same bytes that way and, as the anchor, straight to the broker
(``PUT /api/kernels/{id}/files/{name}``) into the same kernel. Printed: MiB/s of each
(median of the rounds), their ratio, and how far the resident memory of ``llm-agent
serve`` rose above where it was during its uploads (its peak, VmHWM, reset before each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from broker.client import BrokerREST

from .kernelspec import SPEC_NAME, write_kernelspec
from .targets import process_memory_mb, server_env, start_broker

PIECE = os.urandom(1 << 20)  # sent again and again: the bytes do not matter, their number does
SESSION = "bench"


async def put(url: str, headers: dict[str, str], mib: int) -> float:
    """Seconds to PUT ``mib`` MiB to ``url``, sent a MiB at a time."""

    async def produce(write) -> None:
        for _ in range(mib):
            await write(PIECE)

    request = HTTPRequest(
        url,
        method="PUT",
        headers={**headers, "Content-Length": str(mib << 20)},
        body_producer=produce,
        request_timeout=600,
    )
    http = AsyncHTTPClient(force_instance=True)
    began = time.perf_counter()
    try:
        await http.fetch(request)
    finally:
        http.close()
    return time.perf_counter() - began


def start_agent(broker_url: str, token: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    """``llm-agent serve`` on a free port (no model is asked anything here)."""
    command = [
        sys.executable, "-m", "llm_agent", "serve", "--port", "0", "--auth-token", token,
        "--broker", broker_url, "--token", token, "--kernel-name", SPEC_NAME,
        "--base-url", "http://127.0.0.1:1/v1", "--model", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"llm-agent serve did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip().rstrip("/")


def reset_peak(pid: int) -> float:
    """Set the process's peak resident memory to its current one; that, in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return process_memory_mb(pid)["rss_mb"]


async def measure(workdir: Path, mib: int, rounds: int) -> dict[str, list[float]]:
    jupyter_path = workdir / "jupyter"
    write_kernelspec(jupyter_path)
    token = secrets.token_hex(8)
    broker = start_broker(
        server_env(jupyter_path, workdir / "runtime"), workdir, token, "--pool-size=0"
    )
    agent, url = start_agent(broker.url, token, workdir)
    auth = {"Authorization": f"Bearer {token}"}
    figures: dict[str, list[float]] = {"direct": [], "llm-agent serve": [], "memory": []}
    try:
        await AsyncHTTPClient().fetch(
            f"{url}/api/chat/{SESSION}", method="PUT", body=b"", headers=auth
        )
        (kernel,) = await BrokerREST(broker.url, token).list_kernels()
        direct = f"{broker.url}/api/kernels/{kernel['id']}/files/direct.bin"
        chat = f"{url}/api/chat/{SESSION}/files/chat.bin"
        for _ in range(rounds):
            figures["direct"].append(
                mib / await put(direct, {"Authorization": f"token {token}"}, mib)
            )
            before = reset_peak(agent.pid)
            figures["llm-agent serve"].append(mib / await put(chat, auth, mib))
            figures["memory"].append(process_memory_mb(agent.pid)["peak_rss_mb"] - before)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        broker.stop()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="size of each upload in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(Path(tmp), args.mib, args.rounds))
    direct = statistics.median(figures["direct"])
    chat = statistics.median(figures["llm-agent serve"])
    print(f"{args.mib} MiB uploads, median of {args.rounds} (load {os.getloadavg()[0]:.2f}):")
    print(f"  straight to the broker (anchor): {direct:6.1f} MiB/s")
    print(
        f"  through llm-agent serve:         {chat:6.1f} MiB/s  ({chat / direct:.2f} x the anchor)"
    )
    print(f"  llm-agent serve peak RSS rise:   {max(figures['memory']):6.1f} MB (the largest)")


if __name__ == "__main__":
    sys.exit(main())
