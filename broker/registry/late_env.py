"""Silent requests to a pooled kernel: its first execution, run before it joins the pool, and
its late environment (the request's variables and working directory), applied when it is
handed out."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ..pools import WarmKernel
from ..wire import make_message


async def silent_execute(warm: WarmKernel, code: str) -> asyncio.Future[dict[str, Any]]:
    """Send ``code`` as a silent execute_request (no output, no history); the returned
    future holds the content of its reply."""
    request = make_message(
        "shell",
        "execute_request",
        {"code": code, "silent": True, "store_history": False, "allow_stdin": False},
        session=warm.bridge.session,
    )
    replied: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_reply(msg: Any) -> None:
        if msg.msg_type == "execute_reply" and not replied.done():
            warm.bridge.release(request.msg_id)
            replied.set_result(msg.content_dict())

    await warm.bridge.request(request, on_reply)
    return replied


async def first_execution(warm: WarmKernel, timeout: float) -> None:
    """Run a silent ``pass`` and wait for its reply.

    ipykernel's first execution takes longer than the next ones (bench/claim.py measured
    22-24 ms to the first stdout of a claimed kernel against 7-9 ms for the next): paid
    here, while the pool fills, not by the first code of whoever claims the kernel.
    """
    await asyncio.wait_for(await silent_execute(warm, "pass"), timeout)


async def apply_late_env(
    warm: WarmKernel, env: dict[str, str], cwd: str, log: logging.Logger
) -> None:
    """Set a pooled kernel's environment variables and working directory, silently.

    Not awaited: the kernel handles shell requests in order and every client's requests
    go through the same shell socket, so this runs before any code of the new owner.
    """
    code = f"__import__('os').environ.update({json.dumps(env)})"
    if cwd:
        code += f"; __import__('os').chdir({json.dumps(cwd)})"
    replied = await silent_execute(warm, code)

    def check(reply: asyncio.Future[dict[str, Any]]) -> None:
        if reply.result().get("status") != "ok":
            log.warning("kernel %s: could not apply %s", warm.manager.kernel_id, sorted(env))

    replied.add_done_callback(check)
