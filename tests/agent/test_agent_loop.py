"""The tool loop against the scripted model, with a real broker and real kernels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llm_agent.agent import Agent, AgentConfig
from llm_agent.events import Answer, Event, TextDelta, ToolFinished, ToolOutputEvent, ToolStarted
from llm_agent.kernel import KernelSession

from .conftest import ModelFactory
from .scripted_llm import (
    TEXT_MODEL,
    ScriptedLLM,
    Turn,
    expect_tool_messages,
    image_parts,
    python,
    tool_messages,
)

pytestmark = pytest.mark.slow

CSV = "city,value\nOslo,1\nLima,2\nPune,3\n"
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "df.plot.bar(x='city', y='value')\nplt.savefig('plot.png')\nplt.show()"
)


def write_csv(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(CSV)
    return path


def expect_csv_analysis(llm: ScriptedLLM) -> None:
    """The model's side of a three-step analysis: load, summarise (two calls), plot, answer."""

    def saw_upload(body: dict) -> None:
        assert "data.csv (32 bytes)" in body["messages"][-1]["content"]
        assert body["tools"][0]["function"]["name"] == "python"

    def saw_plot(body: dict) -> None:
        assert tool_messages(body) == ["[image/png image 1 attached below]"]
        assert body["messages"][-1]["role"] == "user"
        assert image_parts(body)[0].startswith("data:image/png;base64,iVBOR")

    llm.add(
        Turn(
            content="Let me look.",
            check=saw_upload,
            tool_calls=[
                python("import pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.shape)"),
                python("print(df['value'].mean())"),
            ],
        ),
        Turn(check=expect_tool_messages("(3, 2)", "2.0"), tool_calls=[python(PLOT)]),
        Turn(content="The mean value is 2.0; Pune is highest.", check=saw_plot),
    )


async def test_csv_analysis_with_plot_in_several_steps(
    llm: ScriptedLLM,
    make_model: ModelFactory,
    kernel_session: KernelSession,
    tmp_path: Path,
    workdir: Path,
) -> None:
    expect_csv_analysis(llm)
    events: list[Event] = []
    agent = Agent(make_model(), kernel_session, AgentConfig(accepts_images=True))
    await agent.upload(write_csv(tmp_path))
    answer = await agent.ask("What is the mean value? Plot it.", events.append)
    assert answer == "The mean value is 2.0; Pune is highest."
    assert (workdir / "plot.png").exists()
    kinds = [e.kind for e in events if not isinstance(e, TextDelta)]
    assert kinds == ["tool_call", "tool_output", "tool_result"] * 3 + ["answer"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me look." + answer


async def test_text_only_model_gets_a_description_instead_of_the_image(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def described(body: dict) -> None:
        (message,) = tool_messages(body)
        assert re.match(r"\[\d+x\d+ image/png image produced", message)
        assert "cannot view images" in message

    llm.add(
        Turn(tool_calls=[python("import matplotlib.pyplot as plt\nplt.plot([1, 3])\nplt.show()")]),
        Turn(content="A rising line.", check=described),
    )
    agent = Agent(make_model(TEXT_MODEL), kernel_session, AgentConfig(accepts_images=False))
    assert await agent.ask("Plot something") == "A rising line."


async def test_timeout_interrupts_and_the_model_is_told(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def told(body: dict) -> None:
        (message,) = tool_messages(body)
        assert "KeyboardInterrupt" in message
        assert "timed out and was interrupted" in message and "still there" in message

    llm.add(
        Turn(tool_calls=[python("import time\ntime.sleep(60)")]),
        Turn(content="It took too long.", check=told),
    )
    agent = Agent(make_model(), kernel_session, AgentConfig(exec_timeout=1))
    assert await agent.ask("Sleep") == "It took too long."


async def test_kernel_crash_is_told_to_the_model_and_the_kernel_comes_back(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def told_state_is_gone(body: dict) -> None:
        first, message = tool_messages(body)
        assert first == "[no output]"
        assert "kernel crashed" in message and "restarted" in message
        assert "variables" in message and "gone" in message

    llm.add(
        Turn(tool_calls=[python("x = 1"), python("import os\nos._exit(1)")]),
        Turn(check=told_state_is_gone, tool_calls=[python("print('x' in globals())")]),
        Turn(content="The kernel crashed; x is gone.", check=expect_tool_messages("False")),
    )
    events: list[Event] = []
    agent = Agent(make_model(), kernel_session)
    await agent.ask("Crash it", events.append)
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert [e.kernel_restarted for e in finished] == [False, True, False]


async def test_long_output_is_truncated_head_and_tail(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def truncated(body: dict) -> None:
        (message,) = tool_messages(body)
        assert len(message) < 1200
        assert message.startswith("0000000\n") and message.endswith("0019999")
        assert "the full output was 159999 characters" in message

    llm.add(
        Turn(tool_calls=[python("for i in range(20000):\n    print(f'{i:07d}')")]),
        Turn(content="Many lines.", check=truncated),
    )
    agent = Agent(make_model(), kernel_session, AgentConfig(max_output_chars=1000))
    await agent.ask("Print a lot")


async def test_transient_errors_are_retried(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    llm.add(Turn(status=429), Turn(status=500), Turn(content="Recovered."))
    agent = Agent(make_model(), kernel_session)
    assert await agent.ask("Hello") == "Recovered."
    assert len(llm.requests) == 3


async def test_non_streamed_completions_run_tools_too(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def got_42(body: dict) -> None:
        assert body.get("stream") is None and tool_messages(body) == ["Out[1]: 42"]

    llm.add(Turn(tool_calls=[python("6 * 7")]), Turn(content="42.", check=got_42))
    agent = Agent(make_model(stream=False), kernel_session)
    assert await agent.ask("Six times seven?") == "42."


async def test_malformed_tool_arguments_are_explained_to_the_model(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession
) -> None:
    def explained(body: dict) -> None:
        (message,) = tool_messages(body)
        assert "not valid JSON" in message

    llm.add(
        Turn(tool_calls=[{"name": "python", "arguments": '{"code": "1+'}]),
        Turn(content="Sorry.", check=explained),
    )
    events: list[Event] = []
    await Agent(make_model(), kernel_session).ask("Go", events.append)
    assert not any(isinstance(e, ToolStarted | ToolOutputEvent) for e in events)
    assert isinstance(events[-1], Answer)


async def test_file_round_trip_through_the_file_api(kernel_session: KernelSession) -> None:
    from llm_agent.files import download, upload

    data = bytes(range(256)) * 1000
    await upload(kernel_session, data, "blob.bin")
    assert await download(kernel_session, "blob.bin") == data
    assert json.loads((await kernel_session.execute("1")).text) == 1  # history unaffected
