"""Fixtures: the scripted LLM server, and kernels on the shared test broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from llm_agent.kernel import KernelSession
from llm_agent.llm import ChatModel

from ..broker_process import RunningBroker
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
