"""One Chat Completions call against any OpenAI-compatible server, streamed or not.

Streamed tool calls arrive in fragments (an id and name first, the arguments in
pieces, keyed by index); they are put back together here so the loop sees whole calls.
Transient errors (connection errors, 408, 409, 429, 5xx) are retried by the SDK with
backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI

TextCallback = Callable[[str], Awaitable[None] | None]


@dataclass
class ToolCall:
    """A function call the model asked for; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str = ""

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Reply:
    """The assistant's turn: text and/or tool calls."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [c.message() for c in self.tool_calls]
        return msg


class ChatModel:
    """A model behind an OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama...)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        stream: bool = True,
        max_retries: int = 4,
        timeout: float = 300.0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.stream = stream
        self.extra = extra or {}  # e.g. temperature, passed through unchanged
        self.client = AsyncOpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            # local servers ignore the key but the SDK insists on one
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=max_retries,
            timeout=timeout,
        )

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: TextCallback | None = None,
        tool_choice: str | None = None,
    ) -> Reply:
        """One assistant turn; ``on_text`` receives text deltas as they stream in.

        ``tool_choice`` ("required", "none", "auto") is sent only with tools: OpenAI's
        API rejects it without them; None leaves the choice to the server ("auto").
        """
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, **self.extra}
        if tools:  # an empty list is rejected by OpenAI's API
            kwargs["tools"] = tools
            if tool_choice is not None:
                kwargs["tool_choice"] = tool_choice
        if not self.stream:
            response = await self.client.chat.completions.create(**kwargs)
            choice = response.choices[0]
            reply = Reply(choice.message.content or "", finish_reason=choice.finish_reason)
            for call in choice.message.tool_calls or []:
                reply.tool_calls.append(
                    ToolCall(call.id, call.function.name, call.function.arguments or "")
                )
            if reply.content and on_text is not None:
                await _call(on_text, reply.content)
            return reply
        stream = await self.client.chat.completions.create(**kwargs, stream=True)
        return await _assemble(stream, on_text)

    async def close(self) -> None:
        await self.client.close()

    def explain(self, error: openai.APIError) -> str:
        """One line for a failed call: which server, what it said, which option to change."""
        url = str(self.client.base_url).rstrip("/")
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return (
                f"cannot reach the model server at {url} ({type(cause).__name__}: {cause}): "
                "start it, or give its /v1 URL with --base-url or OPENAI_BASE_URL"
            )
        if isinstance(error, openai.AuthenticationError):
            return (
                f"the model server at {url} refused the API key (401): "
                "give it with --api-key or OPENAI_API_KEY"
            )
        if isinstance(error, openai.NotFoundError):
            return (
                f"the model server at {url} answered 404 ({error.message}): check --model, "
                "and that --base-url ends in /v1"
            )
        status = getattr(error, "status_code", None)
        body = error.body if isinstance(error.body, dict) else {}
        said = " ".join(str(body.get("message") or error.message).split())
        return f"the model server at {url} answered {status or 'an error'}: {said}"


async def _call(callback: TextCallback, text: str) -> None:
    outcome = callback(text)
    if inspect.isawaitable(outcome):
        await outcome


async def _assemble(stream: Any, on_text: TextCallback | None) -> Reply:
    reply = Reply()
    calls: dict[int, ToolCall] = {}
    text: list[str] = []
    async for chunk in stream:
        if not chunk.choices:
            continue  # usage-only chunks
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            text.append(delta.content)
            if on_text is not None:
                await _call(on_text, delta.content)
        for part in delta.tool_calls or []:
            call = calls.setdefault(part.index, ToolCall(id="", name=""))
            if part.id:
                call.id = part.id
            if part.function is not None:
                # the name comes whole in one fragment; some servers repeat it later
                call.name = call.name or part.function.name or ""
                call.arguments += part.function.arguments or ""
        if choice.finish_reason:
            reply.finish_reason = choice.finish_reason
    reply.content = "".join(text)
    reply.tool_calls = [calls[i] for i in sorted(calls)]
    for n, call in enumerate(reply.tool_calls):
        call.id = call.id or f"call_{n}"  # some local servers omit ids
    return reply
