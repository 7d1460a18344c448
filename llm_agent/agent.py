"""The tool loop: the model writes code, the kernel runs it, the outputs go back to the model."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.client.files import Producer
from broker.client.tool_output import ToolOutput, render

from . import files
from .collector import Callbacks
from .events import (
    Answer,
    Event,
    EventHandler,
    TextDelta,
    ToolFinished,
    ToolOutputEvent,
    ToolStarted,
)
from .kernel import KernelSession
from .language import CodeTool
from .llm import ChatModel, ToolCall
from .transcript import Transcript

TOOL_CHOICES = ("auto", "required", "required-first", "none")


@dataclass
class AgentConfig:
    """How the agent treats the model and the kernel."""

    accepts_images: bool = False  # send images as image_url content (vision models)
    exec_timeout: float = 120.0  # seconds per tool call before interrupting
    max_output_chars: int = 8000  # tool output kept, head and tail
    max_image_bytes: int = 256 * 1024  # images are downscaled under this
    max_tool_rounds: int = 20  # model turns with tool calls before forcing an answer
    system_prompt: str = ""  # empty: the code tool's own, written for the kernel's language
    # "auto" (the server decides), "required", "none", or "required-first": a tool call is
    # required in a question's first round, then auto (small models that would answer
    # with code in markdown instead of calling the tool)
    tool_choice: str = "auto"

    def __post_init__(self) -> None:
        if self.tool_choice not in TOOL_CHOICES:
            choices = ", ".join(TOOL_CHOICES)
            raise ValueError(f"tool_choice must be one of {choices}, not {self.tool_choice!r}")


class Agent:
    """One conversation with a model that runs code on one kernel."""

    def __init__(
        self,
        model: ChatModel,
        kernel: KernelSession,
        config: AgentConfig | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.model = model
        self.kernel = kernel
        self.config = config or AgentConfig()
        self.tool = CodeTool.for_language(kernel.language)
        self.transcript = transcript or Transcript()
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.config.system_prompt or self.tool.system_prompt()}
        ]
        self._uploaded: list[str] = []

    async def upload(self, local: Path, remote_path: str | None = None) -> str:
        """Put a file in the kernel's working directory; the model hears of it next turn."""
        remote = await files.upload_file(self.kernel, local, remote_path)
        self._note_upload(remote, local.stat().st_size)
        return remote

    async def upload_stream(self, remote_path: str, produce: Producer, size: int) -> dict:
        """Write ``size`` bytes that ``produce`` writes (a request body as it arrives) to
        ``remote_path``; the file's model. The model hears of it next turn."""
        model = await files.upload_stream(self.kernel, produce, size, remote_path)
        self._note_upload(model["path"], size)
        return model

    def _note_upload(self, remote: str, size: int) -> None:
        self.transcript.add_file(remote, size)
        self._uploaded.append(f"{remote} ({size} bytes)")

    async def download(self, remote_path: str, local: Path) -> Path:
        """Copy a file the code produced out of the kernel's filesystem."""
        return await files.download_file(self.kernel, remote_path, local)

    async def ask(self, question: str, on_event: EventHandler | None = None) -> str:
        """Run the tool loop for one user message; returns the final answer."""
        emit = _emitter(on_event)
        self.transcript.add_user(question)
        if self._uploaded:
            question += "\n\nFiles uploaded to the working directory: " + ", ".join(self._uploaded)
            self._uploaded.clear()
        self.messages.append({"role": "user", "content": question})
        for round_ in range(self.config.max_tool_rounds):
            reply = await self.model.complete(
                self.messages,
                [self.tool.schema()],
                lambda t: emit(TextDelta(t)),
                tool_choice=_tool_choice(self.config.tool_choice, round_),
            )
            self.messages.append(reply.message())
            if not reply.tool_calls:
                return await self._answer(reply.content, emit)
            self.transcript.add_assistant(reply.content)
            await self._run_tools(reply.tool_calls, emit)
        # Out of rounds: ask once more without tools so the user still gets an answer.
        self.messages.append(
            {"role": "user", "content": "Tool budget exhausted: answer now from what you have."}
        )
        reply = await self.model.complete(self.messages, [], lambda t: emit(TextDelta(t)))
        self.messages.append({"role": "assistant", "content": reply.content})
        return await self._answer(reply.content, emit)

    async def _answer(self, text: str, emit: EventHandler) -> str:
        self.transcript.add_assistant(text)
        await emit(Answer(text))
        return text

    async def _run_tools(self, calls: list[ToolCall], emit: EventHandler) -> None:
        """Run every call in order on the one kernel; images follow all the tool messages."""
        images: list[tuple[str, str]] = []
        for call in calls:
            output = await self._run_tool(call, emit)
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": output.text})
            images += output.images
        if images:
            # Tool messages carry text only; images go in a user message right after them.
            parts: list[dict[str, Any]] = [
                {"type": "text", "text": f"The {len(images)} image(s) produced by the code above:"}
            ]
            for mime, b64 in images:
                parts.append(
                    {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64}"}}
                )
            self.messages.append({"role": "user", "content": parts})

    async def _run_tool(self, call: ToolCall, emit: EventHandler) -> ToolOutput:
        code, problem = _code_of(call, self.tool.name)
        if problem:
            await emit(ToolFinished(call.id, False, problem, None, 0, False))
            return ToolOutput(problem)
        await emit(ToolStarted(call.id, code, self.kernel.language))
        execution = await self.kernel.execute(
            code, timeout=self.config.exec_timeout, callbacks=_forwarding(call.id, emit)
        )
        self.transcript.add_code(code, execution)
        output = render(
            execution,
            max_chars=self.config.max_output_chars,
            accepts_images=self.config.accepts_images,
            max_image_bytes=self.config.max_image_bytes,
        )
        if execution.kernel_died:
            await self.kernel.restart()
            output.text += "\n[A fresh kernel was started; it has no state.]"
        await emit(
            ToolFinished(
                call.id,
                execution.ok,
                output.text,
                execution.execution_count,
                len(output.images),
                execution.kernel_restarted or execution.kernel_died or execution.restarted_before,
            )
        )
        return output

    async def close(self) -> None:
        """Close the kernel session (the model client may be shared, so it stays open)."""
        await self.kernel.close()


def _tool_choice(setting: str, round_: int) -> str | None:
    """The Chat Completions ``tool_choice`` of a round; None for auto (the server's default,
    and what servers that do not know the field expect)."""
    if setting == "required-first":
        return "required" if round_ == 0 else None
    return None if setting == "auto" else setting


def _code_of(call: ToolCall, tool: str) -> tuple[str, str]:
    """``(code, "")``, or ``("", problem)`` telling the model what was wrong with its call."""
    if call.name != tool:
        return "", f"Unknown tool {call.name!r}; the only tool is `{tool}` with a `code` argument."
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as e:
        return "", f'The tool arguments were not valid JSON ({e}); send {{"code": "..."}}.'
    code = args.get("code") if isinstance(args, dict) else None
    if not isinstance(code, str) or not code.strip():
        return "", f'The `{tool}` tool needs a non-empty string argument "code".'
    return code, ""


def _emitter(handler: EventHandler | None) -> EventHandler:
    async def emit(event: Event) -> None:
        if handler is not None:
            outcome = handler(event)
            if inspect.isawaitable(outcome):
                await outcome

    return emit


def _forwarding(call_id: str, emit: EventHandler) -> Callbacks:
    """Kernel callbacks that turn each output into a ToolOutputEvent as it arrives."""
    return Callbacks(
        on_stdout=lambda text: emit(ToolOutputEvent(call_id, "stdout", text)),
        on_stderr=lambda text: emit(ToolOutputEvent(call_id, "stderr", text)),
        on_result=lambda r: emit(
            ToolOutputEvent(call_id, "result", r.text or "", r.formats(), r.bundle())
        ),
        on_error=lambda e: emit(
            ToolOutputEvent(call_id, "error", f"{e.name}: {e.value}", traceback=e.traceback)
        ),
    )
