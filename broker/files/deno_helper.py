"""JavaScript and TypeScript kernels of Deno: broker/files/kernel_deno.ts in an async function.

Deno's kernel ignores user expressions and a request's buffers, and publishes display
data for a silent request: the call and an upload's bytes go base64-encoded in the code,
the answer comes back as display data of the helper's MIME type (see
broker/kernel_calls.py), which the broker keeps from other clients. Deno may publish
that answer a few milliseconds after the request's idle status; the broker waits for it.
Calls move at most ``MAX_CHUNK_BYTES``, whatever ``--FileLimits.chunk_bytes`` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..kernel_calls import KernelCall
from .protocol import MIME, TEMP_MARK, encoded_call

SOURCE = (Path(__file__).parent / "kernel_deno.ts").read_text()
# Deno's kernel now and then sends an iopub message whose content is over 4 MiB with a
# wrong signature, which clients drop (with jupyter_client alone: 1 in 30 to 130 display
# messages of 4.2 to 5.6 MB, none of 600 of 4.19 MB): answers stay below, at 2.8 MB.
MAX_CHUNK_BYTES = 2 * 1024 * 1024


class DenoHelper:
    """The file helper of Deno's kernel."""

    max_chunk_bytes = MAX_CHUNK_BYTES

    def call(self, function: str, args: tuple[Any, ...], data: bytes | None) -> KernelCall:
        call, encoded = encoded_call(function, args, data)
        # every string below is ASCII without quotes or backslashes: safe as TS literals
        code = (
            f'await (async () => {{\nconst MIME = "{MIME}";\nconst TEMP_MARK = "{TEMP_MARK}";\n'
            f'{SOURCE}\nawait answer("{call}", "{encoded}");\n}})();'
        )
        return KernelCall(code=code)
