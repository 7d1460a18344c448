"""The kernel-side file helper for each kernel language, picked by kernel_info.

A helper turns a call (a function name of broker/files/kernel_python.py and its
arguments) into an expression in the kernel's own language that evaluates to the JSON
document under ``MIME``, with upload bytes in the request's first buffer. Only Python
has one so far; a kernel of another language answers 501 naming it. Adding R or
JavaScript means one more entry in ``HELPERS`` with the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import BrokerError
from ..kernel_calls import helper_expression, kernel_language
from . import kernel_python

MIME = kernel_python.MIME


class FileHelper(Protocol):
    """Kernel-side file operations in one language."""

    def expression(self, function: str, *args: Any) -> str:
        """The expression that calls ``function(*args)`` in the kernel."""
        ...


@dataclass(frozen=True)
class PythonHelper:
    """broker/files/kernel_python.py, sent with every call."""

    source: str = Path(kernel_python.__file__).read_text()

    def expression(self, function: str, *args: Any) -> str:
        # repr() of the str, int and list arguments used here is a Python literal
        return helper_expression(self.source, f"{function}(*{args!r})")


HELPERS: dict[str, FileHelper] = {"python": PythonHelper()}


def helper_for(kernel_info: dict[str, Any], kernel_name: str) -> FileHelper:
    """The helper for a kernel's ``language_info.name``; 501 for a language without one."""
    if not kernel_info:
        raise BrokerError(
            409, f"The kernel (kernelspec {kernel_name!r}) has not answered kernel_info yet; retry."
        )
    language = kernel_language(kernel_info)
    helper = HELPERS.get(language)
    if helper is None:
        raise BrokerError(
            501,
            f"Files are not available for {language or 'unknown-language'} kernels "
            f"(kernelspec {kernel_name!r}) yet; only {', '.join(sorted(HELPERS))} kernels "
            "have a file helper. Read and write files with code in the kernel instead.",
        )
    return helper
