"""The kernel-side file helper for each kernel, picked by its kernel_info.

A helper (broker/files/protocol.py) exists for IPython kernels, IRkernel, Deno's kernel
and bash_kernel. A helper relies on how its kernel treats a request (what it publishes
for a silent one, whether it reads buffers), so besides the language it may name the
kernel implementations it was written for; any other kernel answers 501 naming its
language and implementation.
"""

from __future__ import annotations

from typing import Any

from ..errors import BrokerError
from ..kernel_calls import kernel_language
from .bash_helper import BashHelper
from .deno_helper import DenoHelper
from .protocol import FileHelper
from .python_helper import PythonHelper
from .r_helper import RHelper

# language (lower case): (the helper, implementations it serves; empty: any)
HELPERS: dict[str, tuple[FileHelper, tuple[str, ...]]] = {
    "python": (PythonHelper(), ()),
    "r": (RHelper(), ("irkernel",)),
    "typescript": (DenoHelper(), ("deno kernel",)),
    "javascript": (DenoHelper(), ("deno kernel",)),
    "bash": (BashHelper(), ("bash_kernel",)),
}

_OFFERED = ", ".join(
    f"{language} ({' or '.join(kinds) or 'any implementation'})"
    for language, (_, kinds) in HELPERS.items()
)


def helper_for(kernel_info: dict[str, Any], kernel_name: str) -> FileHelper:
    """The helper for a kernel; 409 before kernel_info, 501 for a kernel without one."""
    if not kernel_info:
        raise BrokerError(
            409, f"The kernel (kernelspec {kernel_name!r}) has not answered kernel_info yet; retry."
        )
    language = kernel_language(kernel_info)
    implementation = str(kernel_info.get("implementation", "")).lower()
    helper, implementations = HELPERS.get(language, (None, ()))
    if helper is None or (implementations and implementation not in implementations):
        raise BrokerError(
            501,
            f"Files are not available for {language or 'unknown-language'} kernels of "
            f"implementation {implementation or 'unknown'!r} (kernelspec {kernel_name!r}); "
            f"file helpers exist for {_OFFERED}. Read and write files with code in the "
            "kernel instead.",
        )
    return helper
