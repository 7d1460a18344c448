"""A conversation as a Jupyter notebook: markdown for the turns, code cells with real outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, output_from_msg

from broker.client.results import Execution


class Transcript:
    """Builds the notebook as the conversation goes; ``save`` writes a valid .ipynb.

    Each markdown cell names its part in ``metadata.llm_agent.role`` (``title``,
    ``user``, ``assistant``, ``upload``, ``notice``), so that a reader such as the chat
    page can show the conversation again from the notebook alone.
    """

    def __init__(self, kernel_name: str = "python3", title: str | None = None) -> None:
        self.notebook = new_notebook(
            metadata={
                "kernelspec": {
                    "name": kernel_name,
                    "display_name": kernel_name,
                    "language": "python",
                },
                "language_info": {"name": "python"},
            }
        )
        if title:
            self.add_markdown(f"# {title}", "title")

    def add_markdown(self, text: str, role: str = "") -> None:
        cell = new_markdown_cell(text)
        if role:
            cell.metadata["llm_agent"] = {"role": role}
        self.notebook.cells.append(cell)

    def add_user(self, text: str) -> None:
        self.add_markdown(f"**User:** {text}", "user")

    def add_assistant(self, text: str) -> None:
        if text.strip():
            self.add_markdown(f"**Assistant:** {text}", "assistant")

    def add_file(self, remote_path: str, size: int) -> None:
        self.add_markdown(
            f"*Uploaded `{remote_path}` ({size} bytes) to the kernel's working directory; "
            "place it beside this notebook to re-run it.*",
            "upload",
        )

    def add_code(self, code: str, execution: Execution) -> None:
        cell = new_code_cell(code, execution_count=execution.execution_count)
        cell.outputs = [_output(o) for o in execution.outputs]
        self.notebook.cells.append(cell)
        notice = execution.notice()
        if notice:
            self.add_markdown(f"*{notice}*", "notice")

    @property
    def ran_code(self) -> bool:
        """Whether the conversation ran any code (a transcript worth keeping)."""
        return any(cell.cell_type == "code" for cell in self.notebook.cells)

    def save(self, path: Path) -> Path:
        """Validate and write the notebook (nbformat 4)."""
        nbformat.validate(self.notebook)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(self.notebook, str(path))
        return path


def _output(output: dict) -> NotebookNode:
    # output_from_msg builds proper nbformat output objects from kernel message content
    kind = output["output_type"]
    content = {k: v for k, v in output.items() if k != "output_type"}
    return output_from_msg({"header": {"msg_type": kind}, "content": content})
