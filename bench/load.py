"""``python -m bench.load``: one gateway carrying many local kernels and websockets.

For each gateway in turn (the broker, then Enterprise Gateway), kernels are added up to
each size of ``--kernels`` (1, 10, 50, 200 by default), each with ``--clients`` websockets
(alternately v1 and legacy). At every size the same traffic runs for ``--seconds``: small
executes at ``--rate`` per second in all, whose outputs the kernel fans out to every
client, and REST calls every 50 ms. Measured at every size: execute round trip and REST
p50/p99, the gateway's CPU per thousand websocket messages, its memory per kernel and per
websocket, and whether every reply reached the client that asked. One gateway's kernels
are shut down before the next gateway starts (200 kernels take ~10 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from broker.capacity import raise_open_files_limit
from broker.client import BrokerREST

from . import report
from .anchors import ANCHORS, ensure_installed
from .kernelspec import SPEC_NAME, describe, write_kernelspec
from .loadclients import Population, percentiles_ms
from .targets import Server, server_env, start_anchor, start_broker

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench:load:begin (written by python -m bench.load) -->"
END = "<!-- bench:load:end -->"
WARMUP_SECONDS = 2.0
# Enterprise Gateway answers GET /api/kernels with 403 unless told otherwise; the prober
# polls it as Jupyter Server does.
LIST_KERNELS = {"eg": ("--EnterpriseGatewayApp.list_kernels=True",), "kg": ()}
Log = Callable[[str], None]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User and system time of a process, all its threads (not its children: the kernels)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_kernels(rest: BrokerREST, n: int, at_once: int) -> tuple[list[str], list[str]]:
    """``n`` kernels started, ``at_once`` at a time; their ids, and the errors of those that
    failed."""
    slots = asyncio.Semaphore(at_once)

    async def one() -> str:
        async with slots:
            return (await rest.start_kernel(SPEC_NAME))["id"]

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    ids = [r for r in results if isinstance(r, str)]
    errors = [f"{type(r).__name__}: {r}"[:300] for r in results if isinstance(r, BaseException)]
    return ids, errors


async def open_clients(
    population: Population, server: Server, kernel_ids: list[str], per_kernel: int
) -> list[str]:
    """``per_kernel`` websockets to each kernel, v1 and legacy taking turns; the errors."""
    slots = asyncio.Semaphore(16)

    async def one(kernel_id: str, i: int) -> None:
        async with slots:
            await population.add(server.url, server.token, kernel_id, ("v1", "legacy")[i % 2])

    jobs = [one(k, i) for k in kernel_ids for i in range(per_kernel)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    return [f"{type(r).__name__}: {r}"[:300] for r in results if isinstance(r, BaseException)]


async def steady_window(
    population: Population, server: Server, rest: BrokerREST, kernels: list[str], args: Any
) -> dict[str, Any]:
    """The traffic for ``args.seconds`` after a warm-up; what it measured."""
    population.start(args.rate, rest, kernels)
    await asyncio.sleep(WARMUP_SECONDS)
    population.window()
    cpu0, wall0, own0 = cpu_seconds(server.proc.pid), time.monotonic(), time.process_time()
    await asyncio.sleep(args.seconds)
    tally = population.window()
    cpu1, wall1, own1 = cpu_seconds(server.proc.pid), time.monotonic(), time.process_time()
    await population.stop()
    frames = tally.frames_in + tally.frames_out
    return {
        "executes_per_s": len(tally.round_trips) / (wall1 - wall0),
        "execute_ms": percentiles_ms(tally.round_trips),
        "rest_ms": percentiles_ms(tally.rest),
        "messages": frames,
        "cpu_s": cpu1 - cpu0,
        "cpu_ms_per_1000": 1e6 * (cpu1 - cpu0) / frames if frames else None,
        "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
        "client_cpu_share": (own1 - own0) / (wall1 - wall0),
        "foreign_replies": tally.foreign_replies,
        "errors": tally.errors[:20],
        "error_count": len(tally.errors),
        "rest_errors": tally.rest_errors[:20],
        "rest_error_count": len(tally.rest_errors),
        "loadavg": os.getloadavg(),
    }


def rss_mb(server: Server) -> float:
    return server.rss_mb().get("rss_mb", 0.0)


async def measure_level(
    n: int, server: Server, rest: BrokerREST, population: Population, kernels: list[str], args: Any
) -> dict[str, Any]:
    """Grow to ``n`` kernels and their clients, then run the traffic."""
    level: dict[str, Any] = {"kernels_wanted": n}
    before = rss_mb(server)
    began = time.perf_counter()
    new, errors = await start_kernels(rest, n - len(kernels), args.start_at_once)
    level["start_s"] = time.perf_counter() - began
    level["start_errors"] = errors
    kernels += new
    await asyncio.sleep(1)  # let the new kernels' handshakes settle before reading memory
    with_kernels = rss_mb(server)
    connections_before = len(population.clients)
    level["connect_errors"] = await open_clients(population, server, new, args.clients)
    with_clients = rss_mb(server)
    opened = len(population.clients) - connections_before
    level.update(
        kernels=len(kernels),
        websockets=len(population.clients),
        rss_mb=with_clients,
        mb_per_kernel=(with_kernels - before) / len(new) if new else None,
        mb_per_websocket=(with_clients - with_kernels) / opened if opened else None,
    )
    if kernels and population.clients:
        level.update(await steady_window(population, server, rest, kernels, args))
        level["rss_after_mb"] = rss_mb(server)
    return level


async def measure_target(name: str, server: Server, args: Any, out: Log) -> dict[str, Any]:
    """The whole curve on one gateway; kernels and websockets are closed however it ends."""
    rest = BrokerREST(server.url, server.token, timeout=180)
    population = Population()
    kernels: list[str] = []
    result: dict[str, Any] = {"idle_rss_mb": rss_mb(server), "levels": []}
    try:
        for n in args.kernels:
            out(f"{name}: growing to {n} kernels x {args.clients} websockets")
            level = await measure_level(n, server, rest, population, kernels, args)
            result["levels"].append(level)
            out(f"{name}: {summary_line(level)}")
            if level["kernels"] < n:
                out(f"{name}: only {level['kernels']} of {n} kernels started; stopping here")
                break
    finally:
        await population.close()
        slots = asyncio.Semaphore(16)

        async def shutdown(kernel_id: str) -> None:
            async with slots:
                await rest.shutdown_kernel(kernel_id)

        await asyncio.gather(*(shutdown(k) for k in kernels), return_exceptions=True)
    return result


def summary_line(level: dict[str, Any]) -> str:
    ex, rest = level.get("execute_ms", {}), level.get("rest_ms", {})
    return (
        f"{level['kernels']} kernels, {level['websockets']} websockets "
        f"(started in {level['start_s']:.0f} s, {len(level['start_errors'])} failed); "
        f"{level.get('executes_per_s', 0):.0f} executes/s, p50/p99 "
        f"{_ms(ex.get('p50'))}/{_ms(ex.get('p99'))} ms; REST p50/p99 "
        f"{_ms(rest.get('p50'))}/{_ms(rest.get('p99'))} ms; "
        f"CPU {_num(level.get('cpu_ms_per_1000'))} ms per 1000 messages; "
        f"RSS {level['rss_mb']:.0f} MB; execute errors {level.get('error_count', 0)}, "
        f"REST errors {level.get('rest_error_count', 0)}, "
        f"foreign replies {level.get('foreign_replies', 0)}; load {_load(level)}"
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _load(level: dict[str, Any]) -> str:
    return " ".join(f"{x:.1f}" for x in level.get("loadavg", ())) or "n/a"


COLUMNS = (
    "gateway",
    "kernels / websockets",
    "executes/s",
    "execute p50 / p99 ms",
    "REST p50 / p99 ms",
    "CPU ms per 1000 msgs",
    "CPU share",
    "RSS MB",
    "MB per kernel",
    "MB per websocket",
    "executes failed / misrouted",
    "load avg",
)


def table(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [list(COLUMNS)]
    for name, result in results.items():
        if "error" in result:
            rows.append([name, result["error"][:80], *["-"] * (len(COLUMNS) - 2)])
            continue
        for lv in result["levels"]:
            ex, rest = lv.get("execute_ms", {}), lv.get("rest_ms", {})
            failures = len(lv["start_errors"]) + len(lv["connect_errors"])
            rows.append(
                [
                    name,
                    f"{lv['kernels']} / {lv['websockets']}"
                    + (f" ({failures} failed)" if failures else ""),
                    _num(lv.get("executes_per_s"), 0),
                    f"{_ms(ex.get('p50'))} / {_ms(ex.get('p99'))}",
                    f"{_ms(rest.get('p50'))} / {_ms(rest.get('p99'))}",
                    _num(lv.get("cpu_ms_per_1000")),
                    f"{lv['cpu_share']:.0%}" if "cpu_share" in lv else "n/a",
                    f"{lv['rss_mb']:.0f}",
                    _num(lv["mb_per_kernel"], 2),
                    _num(lv["mb_per_websocket"], 3),
                    f"{lv.get('error_count', 0)} / {lv.get('foreign_replies', 0)}"
                    + (
                        f" (REST: {lv['rest_error_count']} failed)"
                        if lv.get("rest_error_count")
                        else ""
                    ),
                    _load(lv),
                ]
            )
    return rows


def markdown(meta: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        [
            BEGIN,
            "### Load curves",
            "",
            f"Command: `{meta['command']}`  ",
            f"Date: {meta['date']}  ",
            f"Kernels: {meta['kernel']}  ",
            f"Traffic at every size: {meta['rate']} executes/s in all for {meta['seconds']} s "
            f"(after {WARMUP_SECONDS:.0f} s of warm-up), REST calls every 50 ms; "
            f"{meta['clients']} websockets per kernel",
            "",
            report.markdown_table(table(results)),
            *failures(results),
            END,
        ]
    )


def failures(results: dict[str, dict[str, Any]]) -> list[str]:
    """A line per gateway that failed starts or websockets: how many, and why in its log."""
    lines = []
    for name, result in results.items():
        levels = result.get("levels", [])
        starts = sum(len(lv["start_errors"]) for lv in levels)
        sockets = sum(len(lv["connect_errors"]) for lv in levels)
        if not (starts or sockets or "error" in result):
            continue
        logged = result.get("server_errors", [])
        kinds = (re.sub(r"\s*\(addr=[^)]*\)", "", e).strip()[:100] for e in logged)
        why = "; ".join(list(dict.fromkeys(kinds))[:4])
        left = result.get("kernels_left_running", 0)
        lines.append(
            f"\n{name}: {starts} kernel starts and {sockets} websockets failed"
            + (f"; {left} kernels were still running after it stopped" if left else "")
            + (f". Its log: {why}" if why else "")
        )
    return lines


async def run(args: argparse.Namespace, workdir: Path, out: Log) -> dict[str, dict[str, Any]]:
    write_kernelspec(workdir / "jupyter")
    env = server_env(workdir / "jupyter", workdir / "runtime")
    AsyncHTTPClient.configure(None, max_clients=64)
    results: dict[str, dict[str, Any]] = {}
    for name in args.targets:
        out(f"{name}: starting")
        (workdir / name).mkdir()
        try:
            if name == "broker":
                server = await asyncio.to_thread(
                    start_broker, env, workdir / name, "bench-token", "--pool-size=0"
                )
            else:
                anchor = ensure_installed(ANCHORS[name], out)
                server = await asyncio.to_thread(
                    start_anchor, anchor, env, workdir / name, "bench-token", *LIST_KERNELS[name]
                )
        except Exception as e:
            out(f"{name}: could not start: {e}")
            results[name] = {"error": f"could not start: {e}"}
            continue
        try:
            results[name] = await measure_target(name, server, args, out)
        except Exception as e:
            out(f"{name}: FAILED: {type(e).__name__}: {e}")
            results[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        finally:
            await asyncio.to_thread(server.stop)
            results[name]["server_errors"] = server_errors(server.log_path)
            leftovers = kill_leftovers(workdir)
            if leftovers:
                out(f"{name}: killed {leftovers} kernels it left running after it stopped")
            results[name]["kernels_left_running"] = leftovers
    return results


def server_errors(log_path: Path, limit: int = 10) -> list[str]:
    """The first distinct error lines of a gateway's log: why it failed, in its words."""
    seen: list[str] = []
    for line in log_path.read_text(errors="replace").splitlines():
        if ("Error" in line or "error" in line) and line[-200:] not in seen:
            seen.append(line[-200:])
            if len(seen) == limit:
                break
    return seen


def kill_leftovers(workdir: Path) -> int:
    """Kill kernels launched with a connection file of this run that outlived their gateway
    (one whose start failed half-way may be forgotten by it)."""
    killed = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(workdir).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue  # gone meanwhile
    return killed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--kernels", default="1,10,50,200", help="sizes, ascending")
    parser.add_argument("--clients", type=int, default=5, help="websockets per kernel")
    parser.add_argument("--rate", type=float, default=50, help="executes per second, in all")
    parser.add_argument("--seconds", type=float, default=15, help="measured at every size")
    parser.add_argument("--targets", default="broker,eg", help="from broker, eg")
    parser.add_argument("--start-at-once", type=int, default=8, help="kernels started at once")
    parser.add_argument(
        "--results-dir", type=Path, default=ROOT / "bench" / "results", help="JSON results"
    )
    report.add_markdown_option(parser, "load")
    args = parser.parse_args(argv)
    args.kernels = sorted(int(n) for n in args.kernels.split(",") if n)
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - {"broker", *ANCHORS}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None, out: Log = log) -> dict[str, Any]:
    args = parse_args(argv)
    raise_open_files_limit()  # 1,000 websockets here; the gateways started inherit it too
    with tempfile.TemporaryDirectory(prefix="kb-load-") as tmp:
        results = asyncio.run(run(args, Path(tmp), out))
    meta = {
        "command": shlex.join(
            ["python", "-m", "bench.load", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": describe(),
        "rate": args.rate,
        "seconds": args.seconds,
        "clients": args.clients,
    }
    document = {"meta": meta, "results": results}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report.write_json(args.results_dir / f"load-{stamp}.json", document)
    print(report.text_table(table(results)))
    if args.markdown:
        report.update_markdown(args.markdown, markdown(meta, results), BEGIN, END)
    return document


if __name__ == "__main__":
    main()
