"""A pooled kernel's late environment: the request's variables and working directory,
applied when the kernel is handed out."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..pools import WarmKernel
from ..wire import make_message


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
    request = make_message(
        "shell",
        "execute_request",
        {"code": code, "silent": True, "store_history": False, "allow_stdin": False},
        session=warm.bridge.session,
    )

    def on_reply(msg: Any) -> None:
        if msg.msg_type == "execute_reply":
            warm.bridge.release(request.msg_id)
            if msg.content_dict().get("status") != "ok":
                log.warning("kernel %s: could not apply %s", warm.manager.kernel_id, sorted(env))

    await warm.bridge.request(request, on_reply)
