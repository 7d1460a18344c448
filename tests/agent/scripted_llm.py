"""A scripted OpenAI-compatible Chat Completions server over real HTTP on 127.0.0.1.

It stands in for the LLM, the one part that cannot run here. Each request consumes the
next ``Turn`` of the script: the turn may first check what the model was sent (an
assertion that fails is recorded and answered with a 400), then answers with text
and/or tool calls, non-streamed or as server-sent events with the tool-call
arguments split into fragments, or fails with an error status (429, 500) to
exercise retries. Two models: ``vision-model`` accepts image content; ``text-model``
answers 400 to image content, as a text-only server does.

``tool_choice`` is honoured as a real server does: "required" (or a named function)
yields tool calls (a turn's ``when_required`` calls, for a model that otherwise answers
in text), "none" yields none, and ``tool_choice`` without tools is a 400 as on OpenAI's
API; a script that contradicts the request is a recorded error, so a test fails when
the agent sends the wrong choice.

It runs on its own thread and event loop so that sync tests, async tests and
subprocesses (the CLI) can all talk to it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tornado import httpserver, netutil, web

VISION_MODEL = "vision-model"
TEXT_MODEL = "text-model"


@dataclass
class Turn:
    """One scripted answer; ``check`` asserts on the request body first."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    check: Callable[[dict[str, Any]], None] | None = None
    # the calls a model that answers with ``content`` makes when the request requires a tool
    when_required: list[dict[str, Any]] | None = None
    # seconds between streamed fragments: a model that writes at a reader's pace, so that
    # a page shows the text growing
    pause: float = 0.0


def python(code: str) -> dict[str, Any]:
    """A call of the agent's `python` tool (arguments as the JSON text a model emits)."""
    return {"name": "python", "arguments": json.dumps({"code": code})}


def tool_messages(body: dict[str, Any]) -> list[str]:
    """The tool messages the model received since its last assistant message."""
    out: list[str] = []
    for msg in reversed(body["messages"]):
        if msg["role"] == "assistant":
            break
        if msg["role"] == "tool":
            out.insert(0, msg["content"])
    return out


def expect_tool_messages(*expected: str) -> Callable[[dict[str, Any]], None]:
    """A check that the model received exactly these tool messages since its last turn."""

    def check(body: dict[str, Any]) -> None:
        assert tool_messages(body) == list(expected)

    return check


def image_parts(body: dict[str, Any]) -> list[str]:
    """Data URLs of every image the request carries."""
    urls = []
    for msg in body["messages"]:
        if isinstance(msg.get("content"), list):
            urls += [p["image_url"]["url"] for p in msg["content"] if p["type"] == "image_url"]
    return urls


class ScriptedLLM:
    """The server; ``url`` ends before ``/v1``. Use ``start()`` and ``stop()``."""

    def __init__(self, script: list[Turn] | None = None, fragment: int = 7) -> None:
        self.script: deque[Turn] = deque(script or [])
        self.fragment = fragment
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: httpserver.HTTPServer | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def add(self, *turns: Turn) -> None:
        self.script.extend(turns)

    def start(self) -> ScriptedLLM:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(10)

    def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.stop()
        self._loop.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        app = web.Application(
            [(r"/v1/chat/completions", _Completions, {"llm": self}), (r"/v1/models", _Models)]
        )
        self._server = httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def next_turn(self, body: dict[str, Any]) -> tuple[int, Turn | str]:
        """The status and turn for a request, or the status and an error message."""
        self.requests.append(body)
        if body.get("model") == TEXT_MODEL and image_parts(body):
            self.errors.append("image content sent to the text-only model")
            return 400, "this model does not accept image input"
        if not self.script:
            self.errors.append("request beyond the end of the script")
            return 400, "the script has no more turns"
        turn = self.script.popleft()
        if turn.check is not None:
            try:
                turn.check(body)
            except Exception:  # any failed check is a 400: a 500 would be retried
                self.errors.append(traceback.format_exc())
                return 400, "scripted check failed: " + traceback.format_exc(limit=1)
        return self._honour_tool_choice(body, turn)

    def _honour_tool_choice(self, body: dict[str, Any], turn: Turn) -> tuple[int, Turn | str]:
        choice = body.get("tool_choice")
        if choice is None or turn.status != 200:
            return turn.status, turn
        problem = ""
        if not body.get("tools"):
            problem = "tool_choice is only allowed when tools are specified"
        elif choice == "required" or isinstance(choice, dict):
            if turn.when_required is not None:
                turn = Turn(tool_calls=turn.when_required)
            if not turn.tool_calls:
                problem = f"tool_choice {choice!r} but the scripted turn calls no tool"
        elif choice == "none":
            if turn.tool_calls:
                problem = "tool_choice 'none' but the scripted turn calls a tool"
        elif choice != "auto":
            problem = f"unknown tool_choice {choice!r}"
        if problem:
            self.errors.append(problem)
            return 400, problem
        return 200, turn


class _Models(web.RequestHandler):
    def get(self) -> None:
        self.write({"object": "list", "data": [{"id": VISION_MODEL}, {"id": TEXT_MODEL}]})


class _Completions(web.RequestHandler):
    def initialize(self, llm: ScriptedLLM) -> None:
        self.llm = llm

    async def post(self) -> None:
        body = json.loads(self.request.body)
        status, turn = self.llm.next_turn(body)
        if isinstance(turn, str) or status != 200:
            message = turn if isinstance(turn, str) else f"scripted {status}"
            self.set_status(status)
            # tells the SDK how long to back off: keeps retry tests fast
            self.set_header("retry-after-ms", "1")
            self.write({"error": {"message": message, "type": "scripted", "code": status}})
            return
        if body.get("stream"):
            await self._stream(body, turn)
        else:
            self.write(_completion(body, turn))

    async def _stream(self, body: dict[str, Any], turn: Turn) -> None:
        self.set_header("Content-Type", "text/event-stream")
        for chunk in _chunks(body, turn, self.llm.fragment):
            self.write(f"data: {json.dumps(chunk)}\n\n")
            await self.flush()  # each fragment its own network write, as real servers do
            if turn.pause:
                await asyncio.sleep(turn.pause)
        self.write("data: [DONE]\n\n")


def _tool_call_json(n: int, call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": call["name"], "arguments": call["arguments"]},
    }


def _completion(body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    if turn.tool_calls:
        message["tool_calls"] = [_tool_call_json(n, c) for n, c in enumerate(turn.tool_calls)]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.tool_calls else "stop",
            }
        ],
    }


def _chunks(body: dict[str, Any], turn: Turn, size: int) -> list[dict[str, Any]]:
    """The streamed form: text in small deltas, each tool call's arguments in fragments."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": turn.content[i : i + size]} for i in range(0, len(turn.content), size)]
    for n, call in enumerate(turn.tool_calls):
        head = {"index": n, "id": f"call_{n}", "type": "function"}
        deltas.append(
            {"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}
        )
        args = call["arguments"]
        for i in range(0, len(args), size):
            deltas.append(
                {"tool_calls": [{"index": n, "function": {"arguments": args[i : i + size]}}]}
            )
    finish = "tool_calls" if turn.tool_calls else "stop"
    chunks = [{"index": 0, "delta": d, "finish_reason": None} for d in deltas] + [
        {"index": 0, "delta": {}, "finish_reason": finish}
    ]
    return [
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
        }
        for choice in chunks
    ]
