"""A kernel on a broker, used over REST and the channels websocket only.

``KernelSession`` creates or attaches to a kernel, runs code and collects an
``Execution`` while calling back per event. A dropped websocket is reopened with the
same session id, resuming after the last message received, so the broker replays
everything after it (even what it had written to the dropped socket). A timeout
interrupts the kernel and, when the interrupt does not take, restarts it; the result
says so.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from broker.client import BrokerAPIError, BrokerREST, ChannelsConnection
from broker.client.results import Execution
from broker.wire import Message, make_message

from .collector import Callbacks, Collector

log = logging.getLogger("llm_agent.kernel")

# How long to wait for a message that has in fact already arrived (see _restarted_while_idle).
_ALREADY_RECEIVED = 0.001


class KernelGone(Exception):
    """The kernel no longer exists on the broker (shut down or culled)."""


class KernelSession:
    """One client session of one broker kernel; executions run one at a time."""

    def __init__(
        self,
        rest: BrokerREST,
        kernel_id: str,
        *,
        session_id: str | None = None,
        owns_kernel: bool = False,
        interrupt_grace: float = 5.0,
        reconnect_attempts: int = 5,
    ) -> None:
        self.rest = rest
        self.kernel_id = kernel_id
        self.session_id = session_id or uuid.uuid4().hex
        self.owns_kernel = owns_kernel
        self.interrupt_grace = interrupt_grace
        self.reconnect_attempts = reconnect_attempts
        self.reconnects = 0
        self._restarted = False  # the kernel restarted since the websocket was opened
        self._spec: tuple[str | None, dict[str, str] | None] = (None, None)  # how it was started
        self._conn: ChannelsConnection | None = None
        self._lock = asyncio.Lock()
        self.language = "python"  # the kernelspec's language, read in connect()

    @classmethod
    async def start(
        cls,
        base_url: str,
        token: str | None = None,
        *,
        kernel_name: str | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> KernelSession:
        """Start a new kernel on the broker at ``base_url``; ``close()`` shuts it down."""
        rest = BrokerREST(base_url, token)
        model = await rest.start_kernel(kernel_name, env)
        session = cls(rest, model["id"], owns_kernel=True, **kwargs)
        session._spec = (kernel_name, env)
        try:
            await session.connect()
            await session._read_language(model["name"])
        except BaseException:
            await rest.shutdown_kernel(model["id"])
            raise
        return session

    @classmethod
    async def attach(
        cls, base_url: str, token: str | None, kernel_id: str, **kwargs: Any
    ) -> KernelSession:
        """Use an existing kernel; pass the same ``session_id`` to resume a session."""
        session = cls(BrokerREST(base_url, token), kernel_id, **kwargs)
        await session.connect()
        await session._read_language((await session.rest.get_kernel(kernel_id))["name"])
        return session

    async def _read_language(self, kernelspec: str) -> None:
        """The kernelspec's language, as the broker lists it (python when it lists none)."""
        specs = (await self.rest.kernelspecs()).get("kernelspecs", {})
        self.language = specs.get(kernelspec, {}).get("spec", {}).get("language") or "python"

    async def connect(self, resume_after: str | None = None) -> None:
        """Open (or reopen) the websocket with this session's id.

        ``resume_after`` (the last msg_id received) asks for everything after it.
        """
        if self._conn is not None:
            await _close_draining(self._conn)
        self._restarted = False
        try:
            self._conn = await ChannelsConnection.connect(
                self.rest.base_url,
                self.kernel_id,
                self.rest.token,
                session_id=self.session_id,
                resume_after=resume_after,
            )
        except InvalidStatus as e:
            if e.response.status_code in (404, 409):
                raise KernelGone(f"kernel {self.kernel_id}: {e.response.body!r}") from None
            raise

    @property
    def connection(self) -> ChannelsConnection | None:
        """The current websocket connection (replaced after a reconnect)."""
        return self._conn

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        callbacks: Callbacks | None = None,
        silent: bool = False,
    ) -> Execution:
        """Run ``code``; the result also reports a timeout, interrupt, restart or death."""
        request = make_message(
            "shell",
            "execute_request",
            {"code": code, "silent": silent, "store_history": not silent, "allow_stdin": False},
            session=self.session_id,
        )
        collector = Collector(request.msg_id, callbacks)
        async with self._lock:
            try:
                if self._conn is None or self._restarted:
                    # after a restart we know of: a new websocket (the broker accepts it only
                    # once the kernel answers again); the old one's leftovers are discarded
                    await self.connect()
                elif await self._restarted_while_idle():
                    collector.execution.restarted_before = True
                    await self.connect()
                await self._send(request)
                try:
                    async with asyncio.timeout(timeout):
                        await self._pump(collector)
                except TimeoutError:
                    await self._stop_runaway(collector)
            except KernelGone:
                collector.execution.kernel_died = True
            ex = collector.execution
            self._restarted = ex.kernel_restarted or ex.kernel_died
            return ex

    async def _restarted_while_idle(self) -> bool:
        """Read what arrived since the last execution; True if the kernel restarted meanwhile.

        Only messages already received are read (the wait is a formality): the broker's
        synthetic ``restarting``/``dead`` status for a kernel that died between
        executions is waiting here, and must not be taken for this execution's crash.
        """
        restarted = False
        while True:
            try:
                msg = await asyncio.wait_for(self._conn.recv(), _ALREADY_RECEIVED)
            except (TimeoutError, ConnectionClosed):
                break
            if msg.msg_type == "status" and not msg.parent_msg_id:
                state = msg.content_dict().get("execution_state")
                # the new kernel's own "starting" has no parent either: keep what was seen
                restarted = restarted or state in ("restarting", "dead")
        return restarted

    async def _send(self, msg: Message) -> None:
        try:
            await self._conn.send(msg)
        except ConnectionClosed:
            await self._reconnect()
            await self._conn.send(msg)

    async def _pump(self, collector: Collector) -> None:
        while not collector.done:
            try:
                msg = await self._conn.recv()
            except ConnectionClosed:
                await self._reconnect()
                continue
            await collector.feed(msg)

    async def _reconnect(self) -> None:
        """Reopen the websocket with the same session id, resuming after the last message
        received: the broker replays everything after it, nothing twice."""
        resume_after = self._conn.last_msg_id if self._conn is not None else None
        delay = 0.1
        for attempt in range(1, self.reconnect_attempts + 1):
            try:
                await self.connect(resume_after)
                self.reconnects += 1
                log.info("reconnected kernel=%s session=%s", self.kernel_id, self.session_id)
                return
            except KernelGone:
                raise
            except (OSError, InvalidStatus, TimeoutError) as e:
                if attempt == self.reconnect_attempts:
                    raise
                log.warning("reconnect %d to kernel %s failed: %s", attempt, self.kernel_id, e)
                await asyncio.sleep(delay)  # backoff between attempts, nothing to await
                delay *= 2

    async def _stop_runaway(self, collector: Collector) -> None:
        """Interrupt after a timeout; restart when the interrupt does not end the execution."""
        collector.execution.timed_out = True
        try:
            await self.rest.interrupt_kernel(self.kernel_id)
            async with asyncio.timeout(self.interrupt_grace):
                await self._pump(collector)
            collector.execution.interrupted = not collector.execution.kernel_restarted
            return
        except TimeoutError:
            log.warning("kernel %s ignored the interrupt; restarting it", self.kernel_id)
        except BrokerAPIError as e:
            log.warning("interrupting kernel %s failed: %s; restarting it", self.kernel_id, e)
        await self.rest.restart_kernel(self.kernel_id)
        collector.execution.kernel_restarted = True
        collector.execution.restart_reason = "timeout"

    async def interrupt(self) -> None:
        await self.rest.interrupt_kernel(self.kernel_id)

    async def restart(self) -> None:
        """Restart the kernel (state is lost), e.g. one the broker gave up on.

        A kernel this session started that no longer exists (shut down or culled) is
        replaced by a new one of the same kernelspec.
        """
        try:
            await self.rest.restart_kernel(self.kernel_id)
        except BrokerAPIError as e:
            if e.status != 404 or not self.owns_kernel:
                raise
            model = await self.rest.start_kernel(*self._spec)
            log.info("kernel %s was gone; started %s", self.kernel_id, model["id"])
            self.kernel_id = model["id"]
        await self.connect()

    async def close(self) -> None:
        """Close the websocket, and shut the kernel down when this session started it."""
        if self._conn is not None:
            await _close_draining(self._conn)
            self._conn = None
        if self.owns_kernel:
            try:
                await self.rest.shutdown_kernel(self.kernel_id)
            except BrokerAPIError as e:
                if e.status != 404:
                    raise

    async def __aenter__(self) -> KernelSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _close_draining(conn: ChannelsConnection) -> None:
    """Close a websocket whose unread messages are no longer wanted.

    The websockets library stops reading once its queue is full (flow control), so it
    would not see the broker's close frame and would wait out its close timeout; reading
    the leftovers while closing lets the close handshake finish at once.
    """
    closing = asyncio.ensure_future(conn.close())
    try:
        while True:
            await conn.recv()
    except ConnectionClosed:
        pass
    await closing
