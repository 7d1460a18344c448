"""The conversation transcript: a valid notebook with real outputs that re-runs with nbclient."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from llm_agent.agent import Agent, AgentConfig
from llm_agent.kernel import KernelSession

from .conftest import ModelFactory
from .scripted_llm import ScriptedLLM
from .test_agent_loop import expect_csv_analysis, write_csv


@pytest.mark.slow
async def test_transcript_notebook_reruns_with_nbclient(
    llm: ScriptedLLM, make_model: ModelFactory, kernel_session: KernelSession, tmp_path: Path
) -> None:
    expect_csv_analysis(llm)
    agent = Agent(make_model(), kernel_session, AgentConfig(accepts_images=True))
    csv = await agent.upload(write_csv(tmp_path))
    await agent.ask("What is the mean value? Plot it.")
    path = agent.transcript.save(tmp_path / "out" / "chat.ipynb")

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds == ["markdown"] * 3 + ["code"] * 3 + ["markdown"]
    assert nb.cells[0].source.startswith("*Uploaded `data.csv` (32 bytes)")
    assert nb.cells[1].source == "**User:** What is the mean value? Plot it."
    assert nb.cells[-1].source.startswith("**Assistant:** The mean value is 2.0")
    recorded = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert recorded[0][0].text == "(3, 2)\n" and recorded[1][0].text == "2.0\n"
    assert "image/png" in recorded[2][0].data

    # A person re-runs it beside the uploaded file (on a local kernel) and gets the same.
    shutil.copy(tmp_path / csv, path.parent / csv)
    await NotebookClient(
        nb, timeout=60, resources={"metadata": {"path": str(path.parent)}}
    ).async_execute()
    rerun = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert [o[0].get("text") for o in rerun[:2]] == ["(3, 2)\n", "2.0\n"]
    assert rerun[2][0].output_type == "display_data" and "image/png" in rerun[2][0].data
