"""The clients of ``python -m bench.load``: websockets running small executes at a steady
rate, checking that every reply reaches the client that asked, and a REST prober.

Every client reads everything its websocket receives (its own replies and outputs, and the
iopub traffic of the kernel's other clients), as a notebook frontend does. Executes
arrive as a Poisson process whose total rate is the same whatever the number of clients,
each client waiting for its previous execute to finish (a closed loop: a slow gateway
is measured as slow, not buried under a growing backlog).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from broker.client import BrokerREST, ChannelsConnection
from broker.wire import make_message, unpack_legacy, unpack_v1

from .report import percentile

EXECUTE_TIMEOUT = 60.0
# The mix each client cycles through: a result, a short print, a 1 KB print.
CODES = ("1+1", "print('load test')", "print('x' * 1000)")


@dataclass
class Tally:
    """What the clients saw in one measurement window."""

    round_trips: list[float] = field(default_factory=list)
    rest: list[float] = field(default_factory=list)
    frames_in: int = 0
    frames_out: int = 0
    foreign_replies: int = 0  # shell replies to a request the receiving client never sent
    errors: list[str] = field(default_factory=list)  # executes that failed or timed out
    rest_errors: list[str] = field(default_factory=list)


def route(data: str | bytes, v1: bool) -> tuple[str, str | None, bool]:
    """``(channel, parent msg_id, whether it is status: idle)`` of one websocket frame,
    decoding no more than that (the client's cost is not the gateway's)."""
    if isinstance(data, str):
        doc = json.loads(data)
        parent = (doc.get("parent_header") or {}).get("msg_id")
        idle = doc["header"].get("msg_type") == "status" and (
            doc["content"].get("execution_state") == "idle"
        )
        return doc.get("channel", ""), parent, idle
    msg = unpack_v1(data) if v1 else unpack_legacy(data)
    idle = msg.is_type("status") and msg.content_dict().get("execution_state") == "idle"
    return msg.channel, msg.parent_msg_id, idle


@dataclass
class _Pending:
    done: asyncio.Future[None]
    replied: bool = False
    idle: bool = False


class Population:
    """Every client of one gateway, the window they count into, and their execute loops."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.clients: list[LoadClient] = []
        self._loops: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def add(self, url: str, token: str, kernel_id: str, protocol: str) -> None:
        conn = await ChannelsConnection.connect(
            url, kernel_id, token, protocol=protocol, open_timeout=120
        )
        self.clients.append(LoadClient(self, conn))

    def start(self, rate: float, rest: BrokerREST, kernel_ids: list[str]) -> None:
        """Executes at ``rate`` per second in all, and REST calls every 50 ms."""
        self._stop = asyncio.Event()
        each = rate / max(1, len(self.clients))
        self._loops = [asyncio.ensure_future(c.run(each, self._stop)) for c in self.clients]
        self._loops.append(asyncio.ensure_future(self._probe_rest(rest, kernel_ids)))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []

    def window(self) -> Tally:
        """Start counting into a new window; the one that ended."""
        ended, self.tally = self.tally, Tally()
        return ended

    async def close(self) -> None:
        await self.stop()
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        self.clients = []

    async def _probe_rest(self, rest: BrokerREST, kernel_ids: list[str]) -> None:
        """The calls a frontend polls with: the kernel list, and one kernel's model."""
        calls = itertools.cycle(["/api/kernels", None])
        while not self._stop.is_set():
            path = next(calls) or f"/api/kernels/{random.choice(kernel_ids)}"
            began = time.perf_counter()
            try:
                await rest.call("GET", path)
            except Exception as e:
                self.tally.rest_errors.append(f"GET {path}: {type(e).__name__}: {e}"[:300])
            else:
                self.tally.rest.append(time.perf_counter() - began)
            try:
                await asyncio.wait_for(self._stop.wait(), 0.05)
            except TimeoutError:
                pass


class LoadClient:
    """One websocket: its own executes, and everything else the kernel fans out to it."""

    def __init__(self, population: Population, conn: ChannelsConnection) -> None:
        self.population = population
        self.conn = conn
        self.pending: dict[str, _Pending] = {}
        self._n = random.randrange(len(CODES))
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for data in self.conn.ws:
            tally = self.population.tally
            tally.frames_in += 1
            channel, parent, idle = route(data, self.conn.v1)
            pending = self.pending.get(parent or "")
            if pending is None:
                tally.foreign_replies += channel == "shell"
                continue
            if channel == "shell":
                pending.replied = True
            elif idle:
                pending.idle = True
            if pending.replied and pending.idle and not pending.done.done():
                pending.done.set_result(None)

    async def execute(self, code: str) -> float:
        """Seconds from sending ``code`` until its reply and its idle status arrived."""
        request = make_message(
            "shell",
            "execute_request",
            {"code": code, "silent": False, "allow_stdin": False},
            session=self.conn.session_id,
        )
        pending = _Pending(asyncio.get_running_loop().create_future())
        self.pending[request.msg_id] = pending
        began = time.perf_counter()
        try:
            await self.conn.send(request)
            self.population.tally.frames_out += 1
            await asyncio.wait_for(pending.done, EXECUTE_TIMEOUT)
            return time.perf_counter() - began
        finally:
            del self.pending[request.msg_id]

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        """Execute the mix at ``rate`` per second on average until ``stop``."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), random.expovariate(rate))
                return
            except TimeoutError:
                pass
            code = CODES[self._n % len(CODES)]
            self._n += 1
            try:
                seconds = await self.execute(code)
            except Exception as e:
                self.population.tally.errors.append(f"execute: {type(e).__name__}: {e}"[:300])
                if self.conn.ws.close_code is not None:
                    return
            else:
                self.population.tally.round_trips.append(seconds)

    async def close(self) -> None:
        await self.conn.close()
        self._reader.cancel()


def percentiles_ms(samples: list[float]) -> dict[str, Any]:
    """p50 and p99 in milliseconds (None without samples)."""
    if not samples:
        return {"p50": None, "p99": None}
    return {"p50": 1000 * percentile(samples, 50), "p99": 1000 * percentile(samples, 99)}
