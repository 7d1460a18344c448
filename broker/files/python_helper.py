"""Python kernels: broker/files/kernel_python.py as the request's one user expression.

IPython evaluates user expressions even for a silent request and returns their rich
representation in the execute_reply, so the answer never reaches iopub; upload bytes
travel as the request's first buffer, read there from the parent message: nothing is
encoded on the way in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..kernel_calls import KernelCall, helper_expression
from . import kernel_python

SOURCE = Path(kernel_python.__file__).read_text()


class PythonHelper:
    """The file helper of IPython kernels."""

    max_chunk_bytes = 0

    def call(self, function: str, args: tuple[Any, ...], data: bytes | None) -> KernelCall:
        # repr() of the str, int and list arguments used here is a Python literal
        expression = helper_expression(SOURCE, f"{function}(*{args!r})")
        return KernelCall(expression=expression, buffers=None if data is None else [data])
