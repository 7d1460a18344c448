"""RemoteKernelClient: jupyter_client's AsyncKernelClient surface over the broker's websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from functools import partial
from queue import Empty
from typing import Any

from websockets.exceptions import ConnectionClosed

from ..wire import Message, WireError, make_message, message_from_dict
from .channels import ChannelsConnection
from .mailbox import Inbox, message_dict

log = logging.getLogger("broker.client")


class RemoteKernelClient:
    """Talk to one broker kernel the way code written for jupyter_client's AsyncKernelClient does.

    All channels share one websocket, which carries the token (``Authorization`` header),
    this client's ``session_id`` (query string and message headers) and each message's
    channel. Requests return their msg_id at once, as jupyter_client's do; a writer task
    sends them in order. Replies and iopub messages wait in per-channel inboxes, so
    waiting never polls. Unlike jupyter_client, ``stop_channels`` is a coroutine (closing a
    websocket is I/O).
    """

    def __init__(
        self,
        url: str,
        kernel_id: str,
        token: str | None = None,
        *,
        session_id: str | None = None,
        protocol: str = "v1",
        kernel_name: str = "",
        open_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.kernel_id = kernel_id
        self.token = token
        self.session_id = session_id or uuid.uuid4().hex
        self.protocol = protocol
        self.kernel_name = kernel_name
        self.open_timeout = open_timeout
        self.allow_stdin = True
        #: Set by the manager while it restarts the kernel on purpose, so that the
        #: broker's ``restarting`` status is not taken for a crash.
        self.expecting_restart = False
        #: Why the kernel is gone for this client ("" while it is alive).
        self.lost_reason = ""
        self.shell_channel = Inbox("shell", partial(self._send_dict, "shell"))
        self.iopub_channel = Inbox("iopub", partial(self._send_dict, "iopub"))
        self.stdin_channel = Inbox("stdin", partial(self._send_dict, "stdin"))
        self.control_channel = Inbox("control", partial(self._send_dict, "control"))
        self._inboxes = {
            i.channel: i
            for i in (
                self.shell_channel,
                self.iopub_channel,
                self.stdin_channel,
                self.control_channel,
            )
        }
        self._conn: ChannelsConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()

    # --- connection --------------------------------------------------------------

    @property
    def channels_running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def start_channels(
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        """Open the websocket. The flags exist for compatibility: one socket carries all."""
        if self.channels_running:
            return
        self._conn = await ChannelsConnection.connect(
            self.url,
            self.kernel_id,
            self.token,
            session_id=self.session_id,
            protocol=self.protocol,
            open_timeout=self.open_timeout,
        )
        self.lost_reason = ""
        self._reader = asyncio.create_task(self._read(self._conn))
        self._writer = asyncio.create_task(self._write(self._conn))

    async def stop_channels(self) -> None:
        """Send what is queued, then close the websocket.

        The broker buffers this session's messages until a client reconnects with the
        same ``session_id``.
        """
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), 10)
        for task in (self._writer, self._reader):
            if task is not None:
                task.cancel()
        if self._conn is not None:
            await self._conn.close()
        for task in (self._writer, self._reader):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._conn = self._reader = self._writer = None

    async def is_alive(self) -> bool:
        """Whether the connection is open and the kernel has not died since it opened."""
        return self.channels_running and not self.lost_reason

    async def _read(self, conn: ChannelsConnection) -> None:
        try:
            while True:
                try:
                    msg = await conn.recv()
                except WireError as e:
                    log.warning("kernel %s: dropped a malformed frame: %s", self.kernel_id, e)
                    continue
                self._track_lifecycle(msg)
                inbox = self._inboxes.get(msg.channel)
                if inbox is not None:
                    inbox.put(message_dict(msg))
        except ConnectionClosed as e:
            self.lost_reason = self.lost_reason or (
                f"the connection to the broker closed ({e.rcvd.code if e.rcvd else 1006} "
                f"{e.rcvd.reason if e.rcvd else 'abnormal closure'})"
            )

    def _track_lifecycle(self, msg: Message) -> None:
        """The broker's synthetic ``restarting`` and ``dead`` statuses mean lost kernel state."""
        if msg.channel != "iopub" or msg.msg_type != "status":
            return
        state = msg.content_dict().get("execution_state")
        if state == "dead":
            self.lost_reason = "the kernel died and the broker could not restart it"
        elif state == "restarting" and not self.expecting_restart:
            self.lost_reason = "the kernel died; the broker restarted it and its state is lost"

    async def _write(self, conn: ChannelsConnection) -> None:
        while True:
            msg = await self._outbox.get()
            try:
                await conn.send(msg)
            except ConnectionClosed:
                log.warning(
                    "kernel %s: %s not sent, connection closed", self.kernel_id, msg.msg_type
                )
            finally:
                self._outbox.task_done()

    # --- sending -----------------------------------------------------------------

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        buffers: list[bytes] | None = None,
        metadata: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
    ) -> str:
        """Queue any message (comm_msg with binary buffers, ...); returns its msg_id."""
        if not self.channels_running:
            raise RuntimeError("channels are not running: await start_channels() first")
        msg = make_message(
            channel,
            msg_type,
            content,
            session=self.session_id,
            parent=parent,
            metadata=metadata,
            buffers=buffers,
        )
        self._outbox.put_nowait(msg)
        return msg.msg_id

    def _send_dict(self, channel: str, msg: dict[str, Any]) -> None:
        if not self.channels_running:
            raise RuntimeError("channels are not running: await start_channels() first")
        self._outbox.put_nowait(message_from_dict(msg, channel))

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": self.allow_stdin if allow_stdin is None else allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self.send("shell", "execute_request", content)

    def kernel_info(self) -> str:
        return self.send("shell", "kernel_info_request", {})

    def comm_info(self, target_name: str | None = None) -> str:
        return self.send(
            "shell", "comm_info_request", {"target_name": target_name} if target_name else {}
        )

    def complete(self, code: str, cursor_pos: int | None = None) -> str:
        pos = len(code) if cursor_pos is None else cursor_pos
        return self.send("shell", "complete_request", {"code": code, "cursor_pos": pos})

    def inspect(self, code: str, cursor_pos: int | None = None, detail_level: int = 0) -> str:
        pos = len(code) if cursor_pos is None else cursor_pos
        content = {"code": code, "cursor_pos": pos, "detail_level": detail_level}
        return self.send("shell", "inspect_request", content)

    def is_complete(self, code: str) -> str:
        return self.send("shell", "is_complete_request", {"code": code})

    def history(
        self, raw: bool = True, output: bool = False, hist_access_type: str = "range", **kw: Any
    ) -> str:
        content = {"raw": raw, "output": output, "hist_access_type": hist_access_type, **kw}
        return self.send("shell", "history_request", content)

    def input(self, string: str) -> str:
        """Answer the kernel's input_request."""
        return self.send("stdin", "input_reply", {"value": string})

    def shutdown(self, restart: bool = False) -> str:
        return self.send("control", "shutdown_request", {"restart": restart})

    # --- receiving ---------------------------------------------------------------

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.shell_channel.get_msg(timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.iopub_channel.get_msg(timeout)

    async def get_stdin_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.stdin_channel.get_msg(timeout)

    async def get_control_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.control_channel.get_msg(timeout)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Return once the kernel answers kernel_info; RuntimeError if it dies or times out."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            msg_id = self.kernel_info()
            # Ask again each second: a request sent while the kernel restarts is lost.
            resend_at = min(deadline, time.monotonic() + 1.0)
            while (remaining := resend_at - time.monotonic()) > 0:
                try:
                    reply = await self.shell_channel.get_msg(remaining)
                except Empty:
                    break
                if reply["parent_header"].get("msg_id") == msg_id:
                    await self.iopub_channel.get_msgs()
                    return
            if not await self.is_alive():
                raise RuntimeError(
                    f"Kernel died before replying to kernel_info: {self.lost_reason}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
