"""``python -m bench.claim``: from "I need a sandbox" to the first result of ``print(1)``.

Each round claims a warm kernel from the broker's pool and runs ``print(1)`` on it, three
ways, against a broker on 127.0.0.1 (and, with ``--pods``, pod kernels on the test control
plane of tests/k8s):

- ``websocket``: ``POST /api/kernels``, open its websocket, ``execute_request``, until the
  first ``stream`` stdout message;
- ``http``: ``POST /api/kernels``, then ``POST /api/kernels/{id}/execute`` until its first
  ``stdout`` event (NDJSON);
- ``mcp``: the official ``mcp`` client, already connected, calls ``start_kernel`` then
  ``execute`` (whose result is the first result: MCP answers when the code has run).

A round claims one kernel per path from a full pool (refills wait for hand-outs to pause,
so none boots beside a claim); the claimed kernels are shut down and the pool refilled
before the next round, untimed. Each timing is split into phases (where the time
goes); the table gives p50/p99 of the whole and the p50 of each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from tornado.httpclient import HTTPRequest

from broker.client import BrokerREST, ChannelsConnection

from . import report
from .drivers import START_TIMEOUT, _decode
from .kernelspec import SPEC_NAME, write_kernelspec
from .pools import POD_SPEC, log, pod_environment, wait_for_pool
from .targets import Server, server_env, start_broker

BEGIN = "<!-- bench:claim:begin (written by python -m bench.claim) -->"
END = "<!-- bench:claim:end -->"
CODE = "print(1)"
PATHS = ("websocket", "http", "mcp")
TARGETS_MS = {"http": 25.0, "mcp": 40.0}  # p50, locally (issue 13)

# not part of the claim: the same print(1) once more on the claimed kernel, to tell the
# cost of a kernel's first execution from the path's own
AGAIN = "again"

Phases = dict[str, float]


async def seconds(step: Awaitable[Any]) -> float:
    began = time.perf_counter()
    await step
    return time.perf_counter() - began


class Clock:
    """Seconds since the claim began, cut into named phases."""

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.phases: Phases = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = now - self.last
        self.last = now

    def total(self) -> Phases:
        return {**self.phases, "total": self.last - self.began}


async def first_stream(conn: ChannelsConnection) -> None:
    """Send ``print(1)`` and return when its first stdout stream message arrived."""
    request = await conn.request(
        "shell", "execute_request", {"code": CODE, "silent": False, "allow_stdin": False}
    )
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            _, msg_type, parent, _ = _decode(await conn.ws.recv(), conn.v1)
            if parent == request.msg_id and msg_type == "stream":
                return


async def claim_websocket(server: Server, rest: BrokerREST, spec: str) -> tuple[str, Phases]:
    """Pooled start, websocket open, execute_request until the first stdout stream message."""
    clock = Clock()
    kernel_id = (await rest.start_kernel(spec))["id"]
    clock.lap("start")
    conn = await ChannelsConnection.connect(
        server.url, kernel_id, server.token, open_timeout=START_TIMEOUT
    )
    try:
        clock.lap("websocket")
        await first_stream(conn)
        clock.lap("first stdout")
        phases = clock.total()
        phases[AGAIN] = await seconds(first_stream(conn))
    finally:
        await conn.close()
    return kernel_id, phases


async def http_first_stdout(server: Server, rest: BrokerREST, kernel_id: str) -> float:
    """Seconds from ``POST .../execute`` of ``print(1)`` until its first ``stdout`` event."""
    began = time.perf_counter()
    arrived: list[float] = []
    pending = bytearray()

    def on_body(piece: bytes) -> None:
        pending.extend(piece)
        while b"\n" in pending and not arrived:
            line, _, rest_ = bytes(pending).partition(b"\n")
            pending[:] = rest_
            if json.loads(line).get("type") == "stdout":
                arrived.append(time.perf_counter())

    request = HTTPRequest(
        f"{server.url}/api/kernels/{quote(kernel_id)}/execute",
        method="POST",
        headers={**rest.headers, "Content-Type": "application/json"},
        body=json.dumps({"code": CODE}),
        streaming_callback=on_body,
        request_timeout=START_TIMEOUT,
    )
    await rest.fetch(request)  # the stream ends with its "end" event, after the first stdout
    if not arrived:
        raise RuntimeError(f"no stdout event from {CODE!r} on kernel {kernel_id}")
    return arrived[0] - began


async def claim_http(server: Server, rest: BrokerREST, spec: str) -> tuple[str, Phases]:
    """Pooled start, then the HTTP execute endpoint until its first ``stdout`` event."""
    clock = Clock()
    kernel_id = (await rest.start_kernel(spec))["id"]
    clock.lap("start")
    first = await http_first_stdout(server, rest, kernel_id)
    # the claim ends at the first stdout event, not at the end of the stream after it
    phases = {"start": clock.phases["start"], "first stdout": first}
    phases["total"] = sum(phases.values())
    phases[AGAIN] = await http_first_stdout(server, rest, kernel_id)
    return kernel_id, phases


async def mcp_execute(session: ClientSession, kernel_id: str) -> None:
    result = await session.call_tool("execute", {"kernel_id": kernel_id, "code": CODE})
    if result.is_error or result.structured_content.get("status") != "ok":
        raise RuntimeError(f"MCP execute failed: {result.content}")


async def claim_mcp(session: ClientSession, spec: str) -> tuple[str, Phases]:
    """``start_kernel`` then ``execute`` over an open MCP session."""
    clock = Clock()
    started = await session.call_tool("start_kernel", {"name": spec})
    if started.is_error:
        raise RuntimeError(f"MCP start_kernel failed: {started.content}")
    kernel_id = started.structured_content["id"]
    clock.lap("start_kernel")
    await mcp_execute(session, kernel_id)
    clock.lap("execute")
    phases = clock.total()
    phases[AGAIN] = await seconds(mcp_execute(session, kernel_id))
    return kernel_id, phases


@contextlib.asynccontextmanager
async def mcp_session(server: Server) -> AsyncIterator[ClientSession]:
    """An initialized MCP session to the broker's ``/mcp`` (the official client)."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=httpx2.Timeout(30.0, read=START_TIMEOUT),
        ) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def measure(server: Server, spec: str, rounds: int) -> dict[str, list[Phases]]:
    """``rounds`` claims per path, the paths taking turns; a full pool at each round's start."""
    rest = BrokerREST(server.url, server.token, timeout=START_TIMEOUT)
    samples: dict[str, list[Phases]] = {path: [] for path in PATHS}
    async with mcp_session(server) as session:
        claims: dict[str, Callable[[], Awaitable[tuple[str, Phases]]]] = {
            "websocket": lambda: claim_websocket(server, rest, spec),
            "http": lambda: claim_http(server, rest, spec),
            "mcp": lambda: claim_mcp(session, spec),
        }
        # one untimed claim per path first: the first call of each pays for imports and
        # connection setup on both sides, which an agent pays once, not per sandbox
        for n in range(rounds + 1):
            await wait_for_pool(server, spec, len(PATHS))
            claimed = []
            for path in PATHS[n % 3 :] + PATHS[: n % 3]:  # each path goes first in turn
                kernel_id, phases = await claims[path]()
                claimed.append(kernel_id)
                if n:
                    samples[path].append(phases)
            # after the round: a kernel shutting down beside a claim would be timed with it
            for kernel_id in claimed:
                await rest.shutdown_kernel(kernel_id)
    return samples


async def broker_samples(
    env: dict[str, str], workdir: Path, spec: str, rounds: int
) -> dict[str, list[Phases]]:
    server = await asyncio.to_thread(
        start_broker,
        env,
        workdir,
        "bench-token",
        f"--KernelPools.sizes={spec}={len(PATHS)}",
        "--pool-size=0",
    )
    try:
        return await measure(server, spec, rounds)
    finally:
        await asyncio.to_thread(server.stop)


def summarize(samples: dict[str, list[Phases]]) -> dict[str, dict[str, Any]]:
    """Per path: p50 and p99 of the total, p50 of each phase, in ms."""
    rows = {}
    for path, runs in samples.items():
        totals = [r["total"] for r in runs]
        phases = [p for p in runs[0] if p != "total"]
        rows[path] = {
            "p50_ms": 1000 * report.percentile(totals, 50),
            "p99_ms": 1000 * report.percentile(totals, 99),
            "phases_p50_ms": {
                p: 1000 * report.percentile([r[p] for r in runs], 50) for p in phases
            },
        }
    return rows


LABELS = {
    "websocket": "pooled start + websocket + first print(1) stream",
    "http": "pooled start + POST .../execute to first stdout event",
    "mcp": "MCP start_kernel + execute",
}


def table_rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[list[str]]:
    """One row per place and path: p50, p99, target, phases."""
    cells = [["kernels", "claim to first result", "p50", "p99", "target (p50)", "phases (p50)"]]
    for place, rows in results.items():
        for path, row in rows.items():
            target = TARGETS_MS.get(path) if place == "local" else None
            verdict = ""
            if target is not None:
                verdict = f"<= {target:.0f} ms " + ("met" if row["p50_ms"] <= target else "MISSED")
            phases = ", ".join(
                f"{p} {ms:.1f}" for p, ms in row["phases_p50_ms"].items() if p != AGAIN
            )
            phases += f" (print(1) again: {row['phases_p50_ms'][AGAIN]:.1f})"
            cells.append(
                [
                    place,
                    LABELS[path],
                    f"{row['p50_ms']:.1f} ms",
                    f"{row['p99_ms']:.1f} ms",
                    verdict or "-",
                    phases,
                ]
            )
    return cells


def markdown(meta: dict[str, Any], results: dict[str, dict[str, dict[str, Any]]]) -> str:
    return (
        f"{BEGIN}\n### Claim to first result\n\nCommand: `{meta['command']}`  \n"
        f"Date: {meta['date']}  \nRounds: {meta['rounds']} per path (after one untimed), "
        f"each claim from a full warm pool; load average before the run: {meta['load']}\n\n"
        f"{report.markdown_table(table_rows(results))}\n{END}"
    )


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, dict[str, Any]]]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-claim-"))
    write_kernelspec(workdir / "jupyter")
    env = server_env(workdir / "jupyter", workdir / "runtime")
    results = {}
    log(f"local kernels: {args.rounds} rounds")
    results["local"] = summarize(await broker_samples(env, workdir, SPEC_NAME, args.rounds))
    if args.pods:
        log(f"pod kernels on the test control plane: {args.rounds} rounds")
        async with pod_environment(workdir) as pod_env:
            pods = await broker_samples(pod_env, workdir, POD_SPEC, args.rounds)
        results["pods"] = summarize(pods)
    return results


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark, print its table; returns the figures (tests read them)."""
    parser = argparse.ArgumentParser(prog="python -m bench.claim", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50, help="timed claims per path")
    parser.add_argument("--pods", action="store_true", help="also pod kernels (test control plane)")
    parser.add_argument(
        "--markdown",
        type=lambda text: Path(text) if text else None,
        default=None,
        help="file whose claim section is rewritten, e.g. docs/benchmarks.md (default: none)",
    )
    args = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[:3]
    results = asyncio.run(main_async(args))
    meta = {
        "command": shlex.join(
            ["python", "-m", "bench.claim", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds,
        "load": " ".join(load),
    }
    out(report.text_table(table_rows(results)))
    if args.markdown:
        report.update_markdown(args.markdown, markdown(meta, results), BEGIN, END)
        out(f"markdown: {args.markdown}")
    return {"meta": meta, "results": results}


if __name__ == "__main__":
    main()
