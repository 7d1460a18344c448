"""A blocking face on RemoteKernelManager and its client, for code written against
jupyter_client's BlockingKernelClient (jupyter_kernel_test): the async objects live on an
event loop in a thread of their own, and each call waits for its result there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from broker.client import RemoteKernelManager
from broker.client.kernel_client import RemoteKernelClient


class LoopThread:
    """An asyncio loop running in a daemon thread until ``close``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A plain function run on the loop's thread (the client is not thread-safe)."""

        async def call() -> Any:
            return fn(*args, **kwargs)

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class BlockingChannel:
    """One inbox of the client: ``get_msg`` waits, raising queue.Empty on timeout."""

    def __init__(self, loop: LoopThread, inbox: Any) -> None:
        self._loop = loop
        self._inbox = inbox

    def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self._loop.run(self._inbox.get_msg(timeout=timeout))


class BlockingRemoteClient:
    """The requests and inboxes jupyter_kernel_test uses, each call blocking."""

    def __init__(self, loop: LoopThread, client: RemoteKernelClient) -> None:
        self._loop = loop
        self._client = client
        self.shell_channel = BlockingChannel(loop, client.shell_channel)
        self.iopub_channel = BlockingChannel(loop, client.iopub_channel)

    def start_channels(self) -> None:
        self._loop.run(self._client.start_channels())

    def stop_channels(self) -> None:
        self._loop.run(self._client.stop_channels())

    def wait_for_ready(self, timeout: float) -> None:
        self._loop.run(self._client.wait_for_ready(timeout=timeout))

    def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self.shell_channel.get_msg(timeout)

    def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return self.iopub_channel.get_msg(timeout)

    def __getattr__(self, name: str) -> Any:
        """Requests (execute, kernel_info, complete, ...) return a msg_id at once."""
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._loop.call(method, *args, **kwargs)


def start_remote_kernel(url: str, token: str, kernel_name: str) -> tuple[Any, Any]:
    """A started broker kernel and a ready blocking client: what start_new_kernel returns."""
    loop = LoopThread()
    km = RemoteKernelManager(url=url, token=token, kernel_name=kernel_name)
    loop.run(km.start_kernel())
    kc = BlockingRemoteClient(loop, loop.call(km.client))
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return BlockingRemoteManager(loop, km), kc


class BlockingRemoteManager:
    """Shuts the broker kernel down and ends the loop thread."""

    def __init__(self, loop: LoopThread, km: RemoteKernelManager) -> None:
        self._loop = loop
        self.km = km

    def shutdown_kernel(self) -> None:
        try:
            self._loop.run(self.km.shutdown_kernel())
        finally:
            self._loop.close()
