"""Per-cell progress of a notebook run, written to a terminal (stderr)."""

from __future__ import annotations

import re
import sys
import time
from typing import Any, TextIO

from nbformat import NotebookNode

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """Text without terminal colour codes (for logs and pipes)."""
    return _ANSI.sub("", text)


def is_code(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(cell.source.strip())


class Progress:
    """nbclient hooks that print one line per executed code cell.

    On a terminal the line appears when the cell starts (so a long cell shows what runs)
    and is completed when it ends; in a pipe only finished lines are written.
    """

    def __init__(self, nb: NotebookNode, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = sum(1 for c in nb.cells if is_code(c))
        self.done = 0
        self.current: int | None = None  # numbered from 1, as JupyterLab shows cells
        self._started = 0.0

    @property
    def started(self) -> bool:
        """Whether any cell began to run (so the notebook holds something new)."""
        return self.current is not None

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _label(self, cell: NotebookNode, index: int) -> str:
        first = cell.source.strip().splitlines()[0]
        first = first if len(first) <= 50 else first[:49] + "…"
        return f"[{self.done + 1}/{self.total}] cell {index + 1}: {first}"

    def on_cell_execute(self, cell: NotebookNode, cell_index: int, **_: Any) -> None:
        self.current = cell_index + 1
        self._started = time.monotonic()
        if self.tty:
            self.stream.write(self._label(cell, cell_index) + " …")
            self.stream.flush()

    def on_cell_executed(
        self, cell: NotebookNode, cell_index: int, execute_reply: dict[str, Any], **_: Any
    ) -> None:
        status = execute_reply.get("content", {}).get("status", "?")
        line = f"{self._label(cell, cell_index)}  {status} {time.monotonic() - self._started:.2f}s"
        self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        self.stream.flush()
        self.done += 1

    def hooks(self) -> dict[str, Any]:
        """Keyword arguments for NotebookClient."""
        return {"on_cell_execute": self.on_cell_execute, "on_cell_executed": self.on_cell_executed}
