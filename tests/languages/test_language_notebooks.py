"""`kernel-broker run` of a notebook in each language gives the outputs of a local nbclient run."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ..clients.conftest import PYTHON, subprocess_env
from ..clients.test_notebook_parity import comparable
from .conftest import ALL, Language

pytestmark = [pytest.mark.slow, pytest.mark.languages]


def notebook(language: Language) -> nbformat.NotebookNode:
    """A notebook of the language: printed text, rich display, state across cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": language.kernelspec,
        "display_name": language.kernelspec,
        "language": language.language,
    }
    sources = [language.hello, language.display, language.define, language.defined]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


@pytest.mark.parametrize("language", ALL)
async def test_run_command_outputs_equal_local_execution(
    language: Language, tmp_path: Path
) -> None:
    nb = notebook(language)
    source = tmp_path / "in.ipynb"
    out = tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    done = subprocess.run(
        [PYTHON, "-m", "broker", "run", str(source), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    remote = nbformat.read(out, as_version=4)
    local = await NotebookClient(copy.deepcopy(nb), timeout=60).async_execute()
    assert comparable(remote) == comparable(local)
    assert remote.cells[0].outputs[0]["text"] == "hello 42\n"
    assert language.mime in remote.cells[1].outputs[0]["data"]
