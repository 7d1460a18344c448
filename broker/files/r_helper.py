"""R kernels (IRkernel): broker/files/kernel_r.R, evaluated inside ``local()``.

IRkernel drops a request's buffers and, for a silent request, publishes only display
data: the call and an upload's bytes go base64-encoded in the code (a 4 MiB chunk is a
5.6 MB string literal, parsed in about half a second), and the answer comes back as
display data of the helper's MIME type (see broker/kernel_calls.py), which the broker
keeps from other clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..kernel_calls import KernelCall
from .protocol import MIME, TEMP_MARK, encoded_call

SOURCE = (Path(__file__).parent / "kernel_r.R").read_text()


class RHelper:
    """The file helper of IRkernel."""

    max_chunk_bytes = 0

    def call(self, function: str, args: tuple[Any, ...], data: bytes | None) -> KernelCall:
        call, encoded = encoded_call(function, args, data)
        # every string below is ASCII without quotes or backslashes: safe as R literals
        code = (
            f'local({{\nMIME <- "{MIME}"\nTEMP_MARK <- "{TEMP_MARK}"\n{SOURCE}\n'
            f'answer("{call}", "{encoded}")\n}})'
        )
        return KernelCall(code=code)
