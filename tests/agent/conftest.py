"""Fixtures: the scripted LLM server, and kernels on the shared test broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from tornado import httpserver, netutil

from llm_agent import health
from llm_agent.agent import Agent
from llm_agent.kernel import KernelSession
from llm_agent.llm import ChatModel
from llm_agent.server import make_app
from llm_agent.sessions import ChatSessions

from ..broker_process import RunningBroker
from .chat_client import MAX_UPLOAD, TOKEN, ChatServer
from .scripted_llm import VISION_MODEL, ScriptedLLM


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    """A scripted model server; the test fails if a check failed or turns were left over."""
    server = ScriptedLLM().start()
    yield server
    server.stop()
    assert not server.errors, "\n".join(server.errors)
    assert not server.script, f"{len(server.script)} scripted turns were never requested"


@pytest.fixture
async def kernel_session(broker: RunningBroker, workdir: Path) -> AsyncIterator[KernelSession]:
    """A fresh kernel on the shared broker (interrupts get a generous grace: machines are slow)."""
    session = await KernelSession.start(
        broker.url, broker.token, env={"KERNEL_WORKING_DIR": str(workdir)}, interrupt_grace=10
    )
    yield session
    await session.close()


ModelFactory = Callable[..., ChatModel]


@pytest.fixture
async def make_model(llm: ScriptedLLM) -> AsyncIterator[ModelFactory]:
    """SDK clients pointed at the scripted server, closed after the test."""
    made: list[ChatModel] = []

    def make(model: str = VISION_MODEL, stream: bool = True) -> ChatModel:
        made.append(ChatModel(model, base_url=llm.url + "/v1", api_key="test-key", stream=stream))
        return made[-1]

    yield make
    for model in made:
        await model.close()


@pytest.fixture
async def chat(
    broker: RunningBroker, make_model: ModelFactory, workdir: Path
) -> AsyncIterator[ChatServer]:
    """`llm-agent serve`'s application on a free port, its kernels working in ``workdir``."""
    model = make_model()

    async def new_agent() -> Agent:
        env = {"KERNEL_WORKING_DIR": str(workdir)}
        return Agent(model, await KernelSession.start(broker.url, broker.token, env=env))

    sessions = ChatSessions(new_agent, idle_timeout=600)
    app = make_app(
        sessions,
        TOKEN,
        status=lambda: health.status(broker.url, broker.token, model),
        max_upload_bytes=MAX_UPLOAD,
    )
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    yield ChatServer(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", sessions)
    server.stop()
    await sessions.close_all()
