"""Calls into a kernel: a helper's answer, through one private execute_request.

The broker sends an execute_request that runs a kernel-side helper (broker/snapshot_kernel.py,
broker/files/kernel_*.py), kept out of the history (``store_history`` false, and
``silent`` wherever the kernel still answers then). The request is private to the broker
(``Bridge.request``): other clients see only its busy and idle statuses, never its
outputs, and no replay buffer holds them. How the call travels is up to the language
(``KernelCall``); how the answer comes back is this one protocol for every helper:

The answer is one JSON object under a MIME type of the helper's, found in the first of

1. the reply's user expression ``result``: its ``data[MIME]`` (IPython kernels evaluate
   user expressions; the answer then never leaves the shell channel),
2. an iopub ``display_data`` or ``execute_result`` of the request: its ``data[MIME]``,
   the object or its JSON text,
3. the request's iopub ``stdout`` stream: the lines between a line ``ANSWER_BEGIN`` and a
   line ``ANSWER_END``, joined without their line breaks (kernels that publish only text).

Once the reply is in, the answer is looked for when the kernel is ``idle`` (a kernel
publishes its outputs before its idle status), and again on each output that comes
later: Deno's large messages may follow idle by milliseconds, and Deno's kernel now and
then sends one with a wrong signature, which the bridge drops, be it the answer or the
idle status. So a call fails as unanswered, with 409, when no answer has come
``LATE_ANSWER_GRACE`` seconds after its reply, instead of waiting for its timeout.

The kernel runs shell requests in the order they arrive: a call waits behind code the
kernel is running, and is refused with 504 when it has not been answered in time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from .bridge import Bridge
from .errors import BrokerError
from .wire import Message, make_message

ANSWER_BEGIN = "kernel-broker-answer-begin"
ANSWER_END = "kernel-broker-answer-end"
LATE_ANSWER_GRACE = 10.0
log = logging.getLogger("broker.kernel_calls")
_OUTPUTS = frozenset({"display_data", "execute_result", "stream"})


@dataclass(frozen=True)
class KernelCall:
    """What one call's execute_request carries."""

    code: str = ""
    expression: str | None = None  # the one user expression (IPython kernels)
    silent: bool = True  # False for kernels that publish nothing for silent requests
    buffers: list[bytes] | None = None  # bytes for the kernel, where it can read them


def kernel_language(kernel_info: dict[str, Any]) -> str:
    """The lower-cased ``language_info.name`` of a kernel_info reply ("" if it has none):
    what picks a per-language helper (files) or refuses one (snapshots)."""
    return str((kernel_info.get("language_info") or {}).get("name", "")).lower()


def helper_expression(source: str, call: str) -> str:
    """A Python expression that runs a helper module's ``source`` in a private namespace
    and evaluates ``call`` there, leaving the user's namespace untouched."""
    return f"(lambda ns: (exec({source!r}, ns), eval({call!r}, ns))[1])({{}})"


class _Pending:
    """One call's reply and iopub messages as they arrive."""

    def __init__(self) -> None:
        self.reply: Message | None = None
        self.outputs: list[Message] = []
        self.idle = False
        self.changed = asyncio.Event()  # set on every message of the call
        self.lost: BrokerError | None = None

    def consume(self, msg: Message) -> None:
        if msg.channel == "iopub":
            if msg.msg_type in _OUTPUTS:
                self.outputs.append(msg)
            elif msg.msg_type == "status":
                state = msg.content_dict().get("execution_state")
                if state in ("restarting", "dead"):
                    self.lost = BrokerError(409, "The kernel restarted or died; try again.")
                self.idle = self.idle or state == "idle"
        elif msg.msg_type == "execute_reply" and self.reply is None:
            self.reply = msg
        self.changed.set()

    async def wait(self, until: float) -> bool:
        """Wait for the call's next message until ``until``; whether one came."""
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), max(0.0, until - time.monotonic()))
        except TimeoutError:
            return False
        if self.lost:
            raise self.lost
        return True


async def evaluate(
    bridge: Bridge,
    call: KernelCall,
    *,
    mime: str,
    timeout: float,
    what: str,
    timeout_setting: str,
) -> dict[str, Any]:
    """The JSON document that ``call`` makes the kernel's helper answer under ``mime``.

    ``what`` completes "The kernel could not ..." when the call failed in the kernel;
    ``timeout_setting`` names the option that sets ``timeout``.
    """
    pending = _Pending()
    request = _request(bridge, call)
    deadline = time.monotonic() + timeout
    await bridge.request(request, pending.consume, private=True)
    try:
        while pending.reply is None:
            if not await pending.wait(deadline):
                raise BrokerError(
                    504,
                    f"The kernel did not answer within {timeout:g} s ({timeout_setting}); "
                    "it may be busy running code: wait for it, or interrupt it.",
                )
        # A reply may be tens of megabytes of JSON (an IPython answer): parsed off the loop.
        reply = await asyncio.to_thread(pending.reply.content_dict)
        _check(reply, call, what)
        if call.expression is not None:
            return _answer(reply["user_expressions"]["result"].get("data", {}).get(mime), what)
        until = min(deadline, time.monotonic() + LATE_ANSWER_GRACE)
        doc = await _published_answer(pending, mime, what, until)
        if doc is None:
            log.warning(
                "kernel %s: call %s ended without an answer: idle=%s outputs=%s",
                bridge.kernel_id,
                request.msg_id,
                pending.idle,
                [m.msg_type for m in pending.outputs],
            )
            raise _unanswered(what)
        return doc
    finally:
        bridge.release(request.msg_id)


async def _published_answer(
    pending: _Pending, mime: str, what: str, until: float
) -> dict[str, Any] | None:
    """The answer among the call's outputs, looked for once the kernel is idle (or at
    ``until``, should the idle status be lost), then again on each later output until
    ``until``; None if it never came."""
    while not pending.idle and await pending.wait(until):
        pass
    searched = -1
    while len(pending.outputs) > searched:
        outputs = list(pending.outputs)  # more may arrive while these are searched
        try:
            found = await asyncio.to_thread(_in_outputs, outputs, mime)
        except ValueError as e:
            raise BrokerError(
                409, f"The kernel could not {what}: its answer is not JSON: {e}"
            ) from None
        if found is not None:
            return _answer(found, what)
        searched = len(outputs)
        while len(pending.outputs) == searched and await pending.wait(until):
            pass
    return None


def _answer(found: Any, what: str) -> dict[str, Any]:
    if found is None:
        raise _unanswered(what)
    if not isinstance(found, dict):
        raise BrokerError(409, f"The kernel could not {what}: its answer is not a JSON object.")
    return found


async def send_call(bridge: Bridge, call: KernelCall) -> None:
    """Have the kernel run ``call`` after everything sent before it, without waiting for
    the answer: clean-up that must happen even when the kernel is busy, or when the
    calls before it timed out (they still run, in order, before this one)."""
    await bridge.send_private(_request(bridge, call))


def _request(bridge: Bridge, call: KernelCall) -> Message:
    content = {
        "code": call.code,
        "silent": call.silent,
        "store_history": False,
        "user_expressions": {} if call.expression is None else {"result": call.expression},
        "allow_stdin": False,
        "stop_on_error": False,
    }
    return make_message(
        "shell", "execute_request", content, session=bridge.session, buffers=call.buffers
    )


def _check(reply: dict[str, Any], call: KernelCall, what: str) -> None:
    """409 when the request, or its user expression, failed in the kernel."""
    result = (reply.get("user_expressions") or {}).get("result") or {}
    if reply.get("status") != "ok" or (call.expression and result.get("status") != "ok"):
        failure = result if result.get("ename") else reply
        raise BrokerError(
            409,
            f"The kernel could not {what}: "
            f"{failure.get('ename', reply.get('status'))}: {failure.get('evalue', '')}",
        )


def _unanswered(what: str) -> BrokerError:
    return BrokerError(409, f"The kernel could not {what}: it answered without a result.")


def _in_outputs(outputs: list[Message], mime: str) -> Any:
    """The answer in a call's iopub outputs (display data, or framed stdout), or None."""
    stdout: list[str] = []
    for msg in outputs:
        content = msg.content_dict()
        if msg.msg_type == "stream":
            if content.get("name") == "stdout":
                stdout.append(str(content.get("text", "")))
        elif mime in (content.get("data") or {}):
            doc = content["data"][mime]
            return json.loads(doc) if isinstance(doc, str) else doc
    lines = "".join(stdout).splitlines()
    if ANSWER_BEGIN not in lines:
        return None
    begin = lines.index(ANSWER_BEGIN) + 1
    if ANSWER_END not in lines[begin:]:
        return None
    return json.loads("".join(lines[begin : lines.index(ANSWER_END, begin)]))
