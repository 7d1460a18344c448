"""``python -m bench.replay_memory``: what the session log behind ``resume_after`` costs.

For each setting of ``--KernelRegistry.replay_buffer_bytes`` (the default 64 MiB, and 0,
which keeps no log), one broker on 127.0.0.1, one kernel, ``--sessions`` websockets on
it, and one 50 MB print that every websocket receives. Printed: the broker's resident
memory (VmRSS) before the print and after it, once every websocket has received it all;
the difference is the log (the print's message, shared by every session's log) plus
whatever the allocator keeps of the buffers that carried it.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from broker.client import BrokerREST, ChannelsConnection

from .kernelspec import SPEC_NAME, write_kernelspec
from .targets import process_memory_mb, server_env, start_broker

PRINT = "print('x' * 50_000_000)"


async def drain(conn: ChannelsConnection, parent: str) -> None:
    """Read until the print's idle status: all of its output has reached this websocket."""
    while True:
        msg = await conn.recv(timeout=300)
        if msg.parent_msg_id == parent and msg.msg_type == "status":
            if msg.content_dict()["execution_state"] == "idle":
                return


async def measure(workdir: Path, replay_bytes: int, sessions: int) -> tuple[float, float]:
    """Broker RSS in MB before and after a 50 MB print reached ``sessions`` websockets."""
    jupyter_path, runtime = workdir / "jupyter", workdir / "runtime"
    write_kernelspec(jupyter_path)
    env = server_env(jupyter_path, runtime)
    args = [f"--KernelRegistry.replay_buffer_bytes={replay_bytes}", "--pool-size=0"]
    server = start_broker(env, workdir, secrets.token_hex(8), *args)
    try:
        kernel = (await BrokerREST(server.url, server.token).start_kernel(SPEC_NAME))["id"]
        conns = [
            await ChannelsConnection.connect(server.url, kernel, server.token)
            for _ in range(sessions)
        ]
        await conns[0].execute("1")  # everything warmed up before the first figure
        before = process_memory_mb(server.proc.pid)["rss_mb"]
        request = await conns[0].request("shell", "execute_request", {"code": PRINT})
        await asyncio.gather(*(drain(c, request.msg_id) for c in conns))
        after = process_memory_mb(server.proc.pid)["rss_mb"]
        for conn in conns:
            await conn.close()
        return before, after
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1, help="websockets on the kernel")
    args = parser.parse_args(argv)
    for replay_bytes in (64 * 2**20, 0):
        with tempfile.TemporaryDirectory() as tmp:
            before, after = asyncio.run(measure(Path(tmp), replay_bytes, args.sessions))
        print(
            f"replay_buffer_bytes={replay_bytes} sessions={args.sessions}: broker RSS "
            f"{before:.0f} MB before, {after:.0f} MB after the 50 MB print (+{after - before:.0f})"
        )


if __name__ == "__main__":
    sys.exit(main())
