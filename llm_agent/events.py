"""What the agent reports while it works: text deltas, tool calls, tool outputs, the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TextDelta:
    """A piece of assistant text as it streams in."""

    text: str
    kind: str = "text"


@dataclass
class ToolStarted:
    """The model asked to run ``code``."""

    call_id: str
    code: str
    language: str = "python"  # the kernel's, for showing the code
    kind: str = "tool_call"


@dataclass
class ToolOutputEvent:
    """An output of a running tool call (stdout/stderr text, a result, an error)."""

    call_id: str
    stream: str  # stdout, stderr, result, error
    text: str
    mime_types: list[str] = field(default_factory=list)
    # a result's MIME bundle (what a page shows: HTML tables, images as base64)
    data: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""  # an error's, plain text
    kind: str = "tool_output"


@dataclass
class ToolFinished:
    """A tool call ended; ``text`` is what the model is told."""

    call_id: str
    ok: bool
    text: str
    execution_count: int | None
    images: int
    kernel_restarted: bool
    kind: str = "tool_result"


@dataclass
class Answer:
    """The final answer of the turn."""

    text: str
    kind: str = "answer"


Event = TextDelta | ToolStarted | ToolOutputEvent | ToolFinished | Answer
EventHandler = Callable[[Event], Awaitable[None] | None]


def event_json(event: Event) -> dict[str, Any]:
    """The event as a JSON object (without its kind, which names the SSE event)."""
    return {k: v for k, v in vars(event).items() if k != "kind"}
