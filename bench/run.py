"""One benchmark run: start every target, measure them in interleaved rounds, stop them all."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from . import measure
from .anchors import ANCHORS, ensure_installed
from .drivers import DirectDriver, Driver, GatewayDriver, Kernel
from .kernelspec import write_kernelspec
from .measure import Sizes
from .targets import Server, server_env, start_anchor, start_broker

TARGETS = ("direct", "broker", "eg", "kg")
BASE = "base"  # the broker of --baseline DIR
Log = Callable[[str], None]


@dataclass
class Plan:
    """What to measure: which targets, how much work per round, how many rounds."""

    targets: list[str]
    sizes: Sizes
    rounds: int
    baseline: str = ""  # a checkout whose broker is measured too, as target "base"


@contextlib.contextmanager
def running_servers(plan: Plan, workdir: Path, log: Log) -> Iterator[dict[str, Server]]:
    """Every gateway the plan names, started, and stopped again however the run ends."""
    env = server_env(workdir / "jupyter", workdir / "runtime")
    token = secrets.token_urlsafe(16)
    for name in plan.targets:
        if name in ANCHORS:
            ensure_installed(ANCHORS[name], log)  # installs first: they take minutes, not seconds
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in plan.targets:
            if name == "direct":
                continue
            log(f"{name}: starting")
            if name == "broker":
                server = start_broker(env, workdir, token)
            elif name == BASE:
                (workdir / BASE).mkdir()
                server = start_broker({**env, "PYTHONPATH": plan.baseline}, workdir / BASE, token)
                server.name = BASE
            else:
                server = start_anchor(ANCHORS[name], env, workdir, token)
            stack.callback(_stop, server, log)
            servers[name] = server
            log(f"{name}: listening on {server.url} (pid {server.proc.pid}, log {server.log_path})")
        yield servers


def _stop(server: Server, log: Log) -> None:
    log(f"{server.name}: stopping")
    server.stop()


def make_drivers(plan: Plan, servers: dict[str, Server], workdir: Path) -> dict[str, list[Driver]]:
    """Per target, one driver per protocol; the first one also does the starts."""
    drivers: dict[str, list[Driver]] = {}
    for name in plan.targets:
        if name == "direct":
            drivers[name] = [
                DirectDriver(workdir / "jupyter", workdir / "runtime", workdir / "direct.log")
            ]
        else:
            drivers[name] = [GatewayDriver(servers[name], p) for p in ("v1", "legacy")]
    return drivers


async def _attempt(what: str, log: Log, coro: Awaitable[Any]) -> Any:
    """Run one measurement; a failure is recorded as data (anchors do fail), not raised."""
    try:
        return await coro
    except Exception as e:
        log(f"  {what} FAILED: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"[:500]}


async def open_kernels(
    order: list[str],
    drivers: dict[str, list[Driver]],
    results: dict[str, Any],
    sizes: Sizes,
    log: Log,
) -> list[tuple[str, str, Driver, Kernel]]:
    """One ready kernel per target and protocol, for the steady-state measurements."""
    opened = []
    for name in order:
        for driver in drivers[name]:
            protocol = driver.label.split("/", 1)[1]
            try:
                kernel = await driver.start_kernel()
            except Exception as e:
                log(f"  {driver.label}: start FAILED: {type(e).__name__}: {e}")
                results[name]["protocols"][protocol] = {"error": f"{type(e).__name__}: {e}"}
                continue
            negotiated = getattr(driver, "negotiated", None)
            if negotiated is not None and negotiated != driver.protocol:
                log(f"  {driver.label}: the server selected {negotiated}; skipped")
                results[name]["protocols"][protocol] = {"unsupported": f"selected {negotiated}"}
                await kernel.close()
                continue
            await kernel.execute(sizes.png_setup_code)
            results[name]["protocols"][protocol] = {"round_trip_s": [], "print": [], "png": []}
            opened.append((name, protocol, driver, kernel))
    return opened


async def steady_pass(
    opened: list[tuple[str, str, Driver, Kernel]], results: dict[str, Any], sizes: Sizes, log: Log
) -> None:
    """A share of the round trips, one print and one PNG run, on each open kernel in turn."""
    for name, protocol, driver, kernel in opened:
        out = results[name]["protocols"][protocol]
        errors = out.setdefault("errors", [])
        rts = await _attempt(
            "round trip", log, measure.round_trips(kernel, sizes.executes_per_pass)
        )
        if isinstance(rts, list):
            out["round_trip_s"].extend(rts)
        else:
            errors.append(rts["error"])
        line = [f"1+1 p50 {1000 * sorted(rts)[len(rts) // 2]:.1f} ms" if rts else "1+1 failed"]
        for what, fn in (("print", measure.printed_output), ("png", measure.png_output)):
            result = await _attempt(what, log, fn(kernel, sizes))
            if "error" in result:
                errors.append(result["error"])
                continue
            out[what].append(result)
            dropped = f" dropped {result['bytes_dropped']} B" if result["bytes_dropped"] else ""
            line.append(f"{what} {result['mb_per_s']:.1f} MB/s{dropped}")
        log(f"  {driver.label:14s} " + ", ".join(line))


async def measure_round(
    order: list[str],
    drivers: dict[str, list[Driver]],
    servers: dict[str, Server],
    sizes: Sizes,
    log: Log,
) -> dict[str, Any]:
    """Cold starts per target; then round trips and output with every target's kernel open,
    taking turns so that the load of the moment hits all of them alike; then the bursts."""
    results: dict[str, Any] = {name: {"protocols": {}} for name in order}
    for name in order:
        starts = await _attempt(
            "cold start", log, measure.cold_starts(drivers[name][0], sizes.cold_starts)
        )
        results[name]["cold_start_s"] = starts
        if isinstance(starts, list):
            log(f"{name}: cold starts {', '.join(f'{1000 * s:.0f}' for s in starts)} ms")
    opened = await open_kernels(order, drivers, results, sizes, log)
    try:
        for i in range(sizes.passes):
            log(f"steady state pass {i + 1}/{sizes.passes}")
            await steady_pass(opened, results, sizes, log)
    finally:
        await asyncio.gather(*(k.close() for *_, k in opened), return_exceptions=True)
    for name in order:
        burst = await _attempt(
            "concurrent starts", log, measure.concurrent_starts(drivers[name][0], sizes.concurrent)
        )
        results[name]["concurrent"] = burst
        if "wall_s" in burst:
            log(
                f"{name}: {sizes.concurrent} concurrent starts ready in {burst['wall_s']:.2f} s, "
                f"{burst['failures']} failed"
            )
        if name in servers:
            results[name]["memory"] = servers[name].rss_mb()
    return results


async def measure_all(
    plan: Plan, drivers: dict[str, list[Driver]], servers: dict[str, Server], log: Log
) -> list[dict[str, Any]]:
    """Rounds over every target; the order rotates so no target always runs first or last."""
    # Tornado's HTTP client queues past 10 requests at once: a burst of 20 starts would
    # otherwise measure our client's queue, not the gateway.
    AsyncHTTPClient.configure(None, max_clients=max(64, 2 * plan.sizes.concurrent))
    rounds: list[dict[str, Any]] = []
    try:
        await _rounds(plan, drivers, servers, log, rounds)
    finally:
        # Ctrl-C or a crash mid-measurement: kernels launched by this process must not outlive it.
        all_drivers = [d for ds in drivers.values() for d in ds]
        await asyncio.gather(*(d.close_all() for d in all_drivers), return_exceptions=True)
    return rounds


async def _rounds(
    plan: Plan,
    drivers: dict[str, list[Driver]],
    servers: dict[str, Server],
    log: Log,
    rounds: list[dict[str, Any]],
) -> None:
    for r in range(plan.rounds):
        shift = r % len(plan.targets)
        order = plan.targets[shift:] + plan.targets[:shift]
        log(f"=== round {r + 1}/{plan.rounds}: {', '.join(order)}")
        t0 = time.monotonic()
        rounds.append(await measure_round(order, drivers, servers, plan.sizes, log))
        log(f"round {r + 1} done in {time.monotonic() - t0:.0f} s")


def run(plan: Plan, log: Log = print) -> dict[str, Any]:
    """Start everything, measure, stop everything; the raw results of every round."""
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "runtime").mkdir()
        spec = write_kernelspec(workdir / "jupyter")
        with running_servers(plan, workdir, log) as servers:
            idle_memory = {name: s.rss_mb() for name, s in servers.items()}
            drivers = make_drivers(plan, servers, workdir)
            rounds = asyncio.run(measure_all(plan, drivers, servers, log))
    return {"kernelspec": spec, "idle_memory": idle_memory, "rounds": rounds}
