"""Bash kernels (bash_kernel): broker/files/kernel_bash.sh, run by a bash of its own.

bash_kernel types a cell into an interactive bash through a terminal (pexpect), one line
at a time, waiting for a prompt before each next line; it ignores user expressions and
buffers and publishes nothing at all for a silent request. So a call is a request that
is not silent (each one counts in the kernel's ``execution_count``: bash_kernel offers no
other way out) and whose code is two lines:

1. a short command, typed at the prompt: it puts the terminal in non-canonical mode,
   prints the continuation prompt bash_kernel waits for before it sends the next line,
   reads that line straight from the terminal with ``head -c`` (readline, which reads a
   byte per system call, took 10 s a megabyte; this takes a tenth of a second), decodes
   it into a temporary directory, restores the terminal, runs the script with a
   non-interactive bash and removes its own entry from the shell's history;
2. ``#``, the script (preamble, kernel_bash.sh, the call) in base64, ``#``, the upload
   chunk's bytes in base64: a comment, should it ever reach the shell as a command.

The first line's reads time out (30 s, then 120 s), so a bash_kernel that sends the
second line differently makes the call fail as unanswered, never hangs the kernel. The
answer comes back as framed stdout (broker/kernel_calls.py), hidden from other clients.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path
from typing import Any

from ..kernel_calls import ANSWER_BEGIN, ANSWER_END, KernelCall
from .protocol import CALLS, TEMP_MARK

SOURCE = (Path(__file__).parent / "kernel_bash.sh").read_text()

# Typed at the prompt: every command through `command` (no alias or function of the
# user's shell applies), no `!` (history expansion), its errors silenced.
_BOOTSTRAP = (
    "{{ __kb_d=$(command mktemp -d) && {{ __kb_t=$(command stty -g); "
    "command stty -icanon min 1 time 0; command printf '%s' \"${{PS2//'\\[\\]'/}}\"; "
    'command timeout --foreground 30 head -c {script} | command base64 -d -i >"$__kb_d/s" '
    '&& command timeout --foreground 120 head -c {data} | command base64 -d -i >"$__kb_d/d"; '
    'command stty "$__kb_t"; '
    'BASH_ENV= command bash --norc --noprofile "$__kb_d/s" "$__kb_d/d"; }}; '
    'command rm -rf -- "$__kb_d"; unset __kb_d __kb_t; '
    "[[ $(HISTTIMEFORMAT= command history 1) == *__kb_d=* ]] && command history -d -1; "
    "}} 2>/dev/null || :"
)

_PREAMBLE = "\n".join(
    f"{name}={shlex.quote(value)}"
    for name, value in (
        ("KB_BEGIN", ANSWER_BEGIN),
        ("KB_END", ANSWER_END),
        ("TEMP_MARK", TEMP_MARK),
    )
)


def script(function: str, args: tuple[Any, ...]) -> str:
    """The script a call runs: the helper and ``kb_answer FUNCTION ARG...``."""
    if function not in CALLS or not all(isinstance(a, str | int) for a in args):
        raise ValueError(f"not a file helper call for bash: {function}{args!r}")
    call = " ".join(shlex.quote(str(word)) for word in (function, *args))
    return f'{_PREAMBLE}\nKB_DATA="$1"\n{SOURCE}\nkb_answer {call}\n'


class BashHelper:
    """The file helper of bash_kernel."""

    max_chunk_bytes = 0

    def call(self, function: str, args: tuple[Any, ...], data: bytes | None) -> KernelCall:
        encoded_script = base64.b64encode(
            script(function, args).encode("utf-8", "surrogateescape")
        ).decode()
        encoded_data = base64.b64encode(data or b"").decode()
        # head reads each part with its `#`, the data with the newline after it too
        first = _BOOTSTRAP.format(script=len(encoded_script) + 1, data=len(encoded_data) + 2)
        return KernelCall(code=f"{first}\n#{encoded_script}#{encoded_data}", silent=False)
