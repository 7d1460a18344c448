"""The LLM agent pointed at a kernelspec of another language: its tool is named and
described for that language, and the model's code runs there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_agent.agent import Agent
from llm_agent.kernel import KernelSession

from ..agent.conftest import llm, make_model  # noqa: F401 - fixtures
from ..agent.scripted_llm import ScriptedLLM, Turn, tool_messages
from ..broker_process import RunningBroker
from .conftest import ALL, Language

pytestmark = [pytest.mark.slow, pytest.mark.languages]


def offers_tool(name: str, language: str):
    def check(body: dict) -> None:
        (tool,) = body["tools"]
        assert tool["function"]["name"] == name
        description = tool["function"]["description"]
        assert f"Run {language} code in a persistent {language} session" in description
        assert f"`{name}` tool" in body["messages"][0]["content"]

    return check


def printed_hello(body: dict) -> None:
    (message,) = tool_messages(body)
    assert "hello 42" in message, message


@pytest.mark.parametrize("language", ALL)
async def test_agent_tool_is_named_for_the_kernel_language(
    languages_broker: RunningBroker,
    llm: ScriptedLLM,  # noqa: F811
    make_model,  # noqa: F811
    language: Language,
) -> None:
    display = {"bash": "Bash", "deno": "TypeScript", "r": "R"}[language.install]
    call = {"name": language.tool, "arguments": json.dumps({"code": language.hello})}
    llm.add(
        Turn(check=offers_tool(language.tool, display), tool_calls=[call]),
        Turn(content="It printed hello 42.", check=printed_hello),
    )
    kernel = await KernelSession.start(
        languages_broker.url, languages_broker.token, kernel_name=language.kernelspec
    )
    try:
        agent = Agent(make_model(), kernel)
        assert await agent.ask("Say hello.") == "It printed hello 42."
    finally:
        await kernel.close()


def uploaded_and_summed(body: dict) -> None:
    assert "Files uploaded to the working directory: data.csv" in body["messages"][1]["content"]


def printed_42(body: dict) -> None:
    (message,) = tool_messages(body)
    assert "42" in message, message


@pytest.mark.parametrize("language", ALL)
async def test_agent_moves_files_in_and_out_of_a_kernel_of_the_language(
    languages_broker: RunningBroker,
    llm: ScriptedLLM,  # noqa: F811
    make_model,  # noqa: F811
    language: Language,
    tmp_path: Path,
) -> None:
    code = f"{language.sum_csv}\n{language.write_file}"
    call = {"name": language.tool, "arguments": json.dumps({"code": code})}
    llm.add(
        Turn(check=uploaded_and_summed, tool_calls=[call]),
        Turn(content="The sum is 42.", check=printed_42),
    )
    local = tmp_path / "data.csv"
    local.write_text("a,b\n1,40\n2,2\n")
    work = tmp_path / "work"
    work.mkdir()
    kernel = await KernelSession.start(
        languages_broker.url,
        languages_broker.token,
        kernel_name=language.kernelspec,
        env={"KERNEL_WORKING_DIR": str(work)},
    )
    try:
        agent = Agent(make_model(), kernel)
        assert await agent.upload(local) == "data.csv"
        assert await agent.ask("What is the sum of b?") == "The sum is 42."
        saved = await agent.download("out.txt", tmp_path / "out.txt")
    finally:
        await kernel.close()
    assert saved.read_text() == "from the kernel"
    assert sorted(p.name for p in work.iterdir()) == ["data.csv", "out.txt"]
