"""Notebook parameters injected as a cell, the way papermill users expect."""

from __future__ import annotations

from typing import Any

import nbformat
from nbformat import NotebookNode

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parse_value(text: str) -> Any:
    """A command-line value as papermill reads it: bool, None, int, float, else the string."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parameters_source(params: dict[str, Any]) -> str:
    """Python assignments for ``params``; repr() quotes strings safely."""
    lines = ["# Parameters", *(f"{name} = {value!r}" for name, value in params.items())]
    return "\n".join(lines) + "\n"


def _tags(cell: NotebookNode) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def inject_parameters(nb: NotebookNode, params: dict[str, Any]) -> None:
    """Insert a cell tagged ``injected-parameters`` after the cell tagged ``parameters``.

    Without such a cell it goes first. A cell injected by an earlier run is replaced,
    so running an executed notebook again does not stack parameter cells.
    """
    for name in params:
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in _tags(c)]
    cell = nbformat.v4.new_code_cell(parameters_source(params))
    cell.metadata["tags"] = [INJECTED_TAG]
    position = next(
        (i + 1 for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)),
        0,
    )
    nb.cells.insert(position, cell)
