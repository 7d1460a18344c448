"""`llm-agent ask QUESTION` and `llm-agent serve`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from datetime import datetime
from pathlib import Path

import openai
from tornado import netutil
from tornado.httpserver import HTTPServer

from broker.client.failures import explain
from broker.options import OptionParser, fail, http_url

from . import health
from .agent import TOOL_CHOICES, Agent, AgentConfig
from .chat_files import MAX_UPLOAD_BYTES
from .events import Event, TextDelta, ToolFinished, ToolOutputEvent, ToolStarted
from .files import TransferError
from .health import BROKER_ERRORS, BROKER_OPTIONS, DEFAULT_BROKER
from .kernel import KernelSession
from .llm import ChatModel
from .server import make_app
from .sessions import ChatSessions, SessionUnavailable, run_reaper


def _common(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    broker = parser.add_argument_group("broker")
    broker.add_argument(
        "--broker",
        default=env("BROKER_URL", DEFAULT_BROKER),
        type=http_url,
        help=f"broker base URL (env BROKER_URL; default {DEFAULT_BROKER}, where ./kb serve "
        "listens)",
    )
    broker.add_argument(
        "--token", default=env("BROKER_TOKEN"), help="broker token (env BROKER_TOKEN)"
    )
    broker.add_argument("--kernel-name", help="kernelspec to start (the broker's default if unset)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--base-url",
        default=env("OPENAI_BASE_URL"),
        type=http_url,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (env OPENAI_BASE_URL); "
        "required unless an API key is given, which without it means OpenAI's hosted API",
    )
    model.add_argument(
        "--model",
        default=env("LLM_AGENT_MODEL"),
        required=not env("LLM_AGENT_MODEL"),
        help="model name (env LLM_AGENT_MODEL)",
    )
    model.add_argument(
        "--api-key", default=env("OPENAI_API_KEY"), help="API key (env OPENAI_API_KEY)"
    )
    model.add_argument(
        "--images",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send images to the model (only for models that accept image input)",
    )
    model.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream completions (default on)",
    )
    model.add_argument(
        "--tool-choice",
        choices=TOOL_CHOICES,
        default="auto",
        help="whether the model must call the python tool: auto (the server decides, the "
        "default), required (every round), required-first (a question's first round: for "
        "small models that answer with code in markdown), none",
    )
    model.add_argument("--max-retries", type=int, default=4, help="retries of transient errors")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, default=120.0, help="seconds per code run")
    limits.add_argument("--max-output-chars", type=int, default=8000, help="tool output kept")
    limits.add_argument("--max-rounds", type=int, default=20, help="tool rounds per question")


def _parser() -> argparse.ArgumentParser:
    parser = OptionParser(prog="llm-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question, running code on a broker kernel")
    ask.add_argument("question")
    ask.add_argument(
        "--file",
        action="append",
        type=Path,
        default=[],
        help="upload a file to the kernel's working directory (repeatable)",
    )
    ask.add_argument(
        "--download",
        action="append",
        default=[],
        help="after answering, copy this file from the kernel's working directory (repeatable)",
    )
    ask.add_argument(
        "--notebook", type=Path, help="transcript path (default: llm-agent-TIME.ipynb)"
    )
    _common(ask)
    serve = commands.add_parser(
        "serve", help="the chat page and its API (server-sent events), one kernel per session"
    )
    serve.add_argument("--ip", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8890, help="0 picks a free port")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=1800.0,
        help="seconds before an idle session and its kernel are closed",
    )
    serve.add_argument("--max-sessions", type=int, default=20, help="sessions (kernels) at once")
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=MAX_UPLOAD_BYTES,
        help=f"largest file a person may upload (default {MAX_UPLOAD_BYTES}, as the broker's)",
    )
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument(
        "--auth-token",
        default=os.environ.get("LLM_AGENT_TOKEN"),
        help="the token the page and API clients must send as 'Authorization: Bearer TOKEN' "
        "(env LLM_AGENT_TOKEN; default: one is generated and printed)",
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="no token: anyone who reaches the port runs code in your kernels (trusted "
        "local use only)",
    )
    _common(serve)
    return parser


def _check(args: argparse.Namespace) -> None:
    """Refuse, before anything starts, what would fail later or go where nobody meant."""
    prog = f"llm-agent {args.command}"
    if not args.base_url and not args.api_key:
        fail(
            prog,
            "no model server: give its /v1 URL with --base-url or OPENAI_BASE_URL (llama.cpp's "
            "llama-server: http://127.0.0.1:8080/v1); for OpenAI's hosted API set OPENAI_API_KEY",
            f"{prog} --help",
        )
    for path in getattr(args, "file", []):
        if not path.is_file():
            fail(prog, f"--file {path}: no such file", f"{prog} --help")


def _model(args: argparse.Namespace) -> ChatModel:
    model = ChatModel(
        args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        stream=args.stream,
        max_retries=args.max_retries,
    )
    if not args.base_url:  # only a key was given: say where it goes
        print(f"llm-agent: no --base-url: using {model.client.base_url}", file=sys.stderr)
    return model


def _config(args: argparse.Namespace) -> AgentConfig:
    return AgentConfig(
        accepts_images=args.images,
        exec_timeout=args.timeout,
        max_output_chars=args.max_output_chars,
        max_tool_rounds=args.max_rounds,
        tool_choice=args.tool_choice,
    )


async def _start_agent(args: argparse.Namespace, model: ChatModel) -> Agent:
    try:
        kernel = await KernelSession.start(args.broker, args.token, kernel_name=args.kernel_name)
    except BROKER_ERRORS as e:
        kernel_name = args.kernel_name or ""
        why = await explain(e, args.broker, args.token, BROKER_OPTIONS, kernel_name)
        raise SessionUnavailable(why) from e
    return Agent(model, kernel, _config(args))


def _show(event: Event) -> None:
    """Assistant text on stdout; tool runs on stderr as they happen."""
    if isinstance(event, TextDelta):
        print(event.text, end="", flush=True)
    elif isinstance(event, ToolStarted):
        print(f"\n--- running code ({event.call_id}) ---\n{event.code}\n---", file=sys.stderr)
    elif isinstance(event, ToolOutputEvent):
        print(
            event.text if event.stream != "result" else f"[{', '.join(event.mime_types)}]",
            file=sys.stderr,
            flush=True,
        )
    elif isinstance(event, ToolFinished) and not event.ok:
        print(f"--- tool call {event.call_id} did not succeed ---", file=sys.stderr)


async def ask(args: argparse.Namespace, model: ChatModel) -> int:
    try:
        agent = await _start_agent(args, model)
    except BaseException:
        await model.close()
        raise
    answered = False
    try:
        for path in args.file:
            await agent.upload(path)
        await agent.ask(args.question, _show)
        answered = True
        print()
        for name in args.download:
            saved = await agent.download(name, Path(Path(name).name))
            print(f"downloaded {name} to {saved}", file=sys.stderr)
    finally:
        _save_transcript(agent, args.notebook, answered)
        await agent.close()
        await model.close()
    return 0


def _save_transcript(agent: Agent, path: Path | None, answered: bool) -> None:
    """The notebook of an answered question; of a failed one only where the user named a
    --notebook and code ran (a failed ask leaves no llm-agent-*.ipynb behind)."""
    if answered:
        notebook = path or Path(f"llm-agent-{datetime.now():%Y%m%d-%H%M%S}.ipynb")
        agent.transcript.save(notebook)
        print(f"notebook saved to {notebook}", file=sys.stderr)
    elif path is not None and agent.transcript.ran_code:
        agent.transcript.save(path)
        print(f"partial notebook saved to {path}", file=sys.stderr)


async def serve(args: argparse.Namespace, model: ChatModel) -> int:
    """The chat endpoint; ``model`` is one client (and connection pool) for every session."""
    sessions = ChatSessions(lambda: _start_agent(args, model), args.idle_timeout, args.max_sessions)
    token = None if args.no_auth else args.auth_token or secrets.token_urlsafe(24)
    try:
        sockets = netutil.bind_sockets(args.port, args.ip)
    except OSError as e:
        print(
            f"llm-agent serve: error: cannot listen on {args.ip}:{args.port} ({e.strerror}): "
            "give another --port (0 picks a free one)",
            file=sys.stderr,
        )
        await model.close()
        return 1
    app = make_app(
        sessions,
        token,
        status=lambda: health.status(args.broker, args.token, model),
        max_upload_bytes=args.max_upload_bytes,
    )
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"llm-agent listening on http://{args.ip}:{port}/", flush=True)
    if token and not args.auth_token:  # a token the user gave is not printed back
        print(f"Token: {token}", flush=True)
    reaper = asyncio.ensure_future(run_reaper(sessions, min(60.0, args.idle_timeout / 4)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    reaper.cancel()
    server.stop()
    await sessions.close_all()  # shut every session's kernel down before leaving
    await model.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    _check(args)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    model = _model(args)
    try:
        sys.exit(asyncio.run(ask(args, model) if args.command == "ask" else serve(args, model)))
    except openai.APIError as e:  # the model server: say which, what it said, what to change
        print(f"llm-agent: error: {model.explain(e)}", file=sys.stderr)
    except (SessionUnavailable, TransferError) as e:  # each says what and why in one line
        print(f"llm-agent: error: {e}", file=sys.stderr)
    except BROKER_ERRORS as e:  # the broker failed after the start (a kernel gone, ...)
        why = asyncio.run(
            explain(e, args.broker, args.token, BROKER_OPTIONS, args.kernel_name or "")
        )
        print(f"llm-agent: error: {why}", file=sys.stderr)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(1)
