"""The events of an HTTP execution: what an iopub message becomes, and how a client sees it.

Events are stored as the kernel sent them; each read renders them, with ANSI escape codes
removed from printed text and tracebacks unless the client asked for them (``ansi``).
MIME bundles (display data, results) are passed unchanged: they are data, not terminal text.
"""

from __future__ import annotations

from typing import Any

from .client.ansi import strip_ansi
from .wire import Message

Event = dict[str, Any]
_OUTPUTS = ("stream", "display_data", "update_display_data", "execute_result", "error")


def event_from(msg: Message) -> Event | None:
    """The event an iopub message becomes, or None for messages clients need not see."""
    kind = msg.msg_type
    if kind not in _OUTPUTS:
        if kind == "clear_output":
            return {"type": "clear_output", "wait": bool(msg.content_dict().get("wait"))}
        return None
    content = msg.content_dict()
    if kind == "stream":
        return {"type": content.get("name", "stdout"), "text": content.get("text", "")}
    if kind == "error":
        return {
            "type": "error",
            "name": content.get("ename", ""),
            "value": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    event = {"type": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
    if kind == "execute_result":
        event["execution_count"] = content.get("execution_count")
    return event


def render(event: Event, ansi: bool) -> Event:
    """``event`` as the client asked for it: plain text unless ``ansi``."""
    if ansi:
        return event
    kind = event["type"]
    if kind in ("stdout", "stderr"):
        return {**event, "text": _plain(event["text"])}
    if kind == "error":
        return {**event, "value": _plain(event["value"]), "traceback": _plain(event["traceback"])}
    return event


def _plain(value: Any) -> Any:
    # what the kernel sent, which need not be the strings the protocol asks for
    if isinstance(value, str):
        return strip_ansi(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
