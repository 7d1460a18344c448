"""Calls into a kernel: a helper function's result, through one silent execute_request.

The broker sends an execute_request with empty code and one user expression that runs
a kernel-side helper (broker/snapshot_kernel.py, broker/files/kernel_python.py). It is
silent and kept out of the history: the kernel neither counts it nor echoes it
(``execute_input``) nor publishes a result; other clients see only its busy and idle
statuses. The expression evaluates to an object whose only MIME type carries a JSON
document, and the execute_reply brings that back on the shell channel, to the broker
alone: no other client sees it and no replay buffer holds it. Bytes for the kernel
travel as the request's buffers, read there from the parent message.

The kernel runs shell requests in the order they arrive: a call waits behind code the
kernel is running, and is refused with 504 when it has not been answered in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .bridge import Bridge
from .errors import BrokerError
from .wire import Message, make_message


def kernel_language(kernel_info: dict[str, Any]) -> str:
    """The lower-cased ``language_info.name`` of a kernel_info reply ("" if it has none):
    what picks a per-language helper (files) or refuses one (snapshots)."""
    return str((kernel_info.get("language_info") or {}).get("name", "")).lower()


def helper_expression(source: str, call: str) -> str:
    """A Python expression that runs a helper module's ``source`` in a private namespace
    and evaluates ``call`` there, leaving the user's namespace untouched."""
    return f"(lambda ns: (exec({source!r}, ns), eval({call!r}, ns))[1])({{}})"


async def evaluate(
    bridge: Bridge,
    expression: str,
    *,
    mime: str,
    timeout: float,
    what: str,
    timeout_setting: str,
    buffers: list[bytes] | None = None,
) -> dict[str, Any]:
    """The JSON document that ``expression`` makes the kernel return under ``mime``.

    ``what`` completes "The kernel could not ..." when the call failed in the kernel;
    ``timeout_setting`` names the option that sets ``timeout``.
    """
    reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    request = _request(bridge, expression, buffers)

    def consume(msg: Message) -> None:
        if reply.done():
            return
        if msg.channel == "iopub":
            state = msg.content_dict().get("execution_state") if msg.msg_type == "status" else None
            if state in ("restarting", "dead"):
                reply.set_exception(BrokerError(409, "The kernel restarted or died; try again."))
        elif msg.msg_type == "execute_reply":
            reply.set_result(msg)

    await bridge.request(request, consume)
    try:
        msg = await asyncio.wait_for(reply, timeout)
    except TimeoutError:
        raise BrokerError(
            504,
            f"The kernel did not answer within {timeout:g} s ({timeout_setting}); "
            "it may be busy running code: wait for it, or interrupt it.",
        ) from None
    finally:
        bridge.release(request.msg_id)
    # A reply may be tens of megabytes of JSON: parse it off the event loop.
    return _result(await asyncio.to_thread(msg.content_dict), mime, what)


async def send_call(bridge: Bridge, expression: str) -> None:
    """Have the kernel evaluate ``expression`` after everything sent before it, without
    waiting for the answer: clean-up that must happen even when the kernel is busy, or
    when the calls before it timed out (they still run, in order, before this one)."""
    await bridge.send(_request(bridge, expression, None))


def _request(bridge: Bridge, expression: str, buffers: list[bytes] | None) -> Message:
    content = {
        "code": "",
        "silent": True,
        "store_history": False,
        "user_expressions": {"result": expression},
        "allow_stdin": False,
        "stop_on_error": False,
    }
    return make_message(
        "shell", "execute_request", content, session=bridge.session, buffers=buffers
    )


def _result(reply: dict[str, Any], mime: str, what: str) -> dict[str, Any]:
    result = (reply.get("user_expressions") or {}).get("result") or {}
    if reply.get("status") != "ok" or result.get("status") != "ok":
        failure = result if result.get("ename") else reply
        raise BrokerError(
            409,
            f"The kernel could not {what}: "
            f"{failure.get('ename', reply.get('status'))}: {failure.get('evalue', '')}",
        )
    doc = result.get("data", {}).get(mime)
    if not isinstance(doc, dict):
        raise BrokerError(409, f"The kernel could not {what}: it answered without a result.")
    return doc
