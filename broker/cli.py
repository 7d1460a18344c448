"""`kernel-broker serve | run NOTEBOOK`: the command line."""

from __future__ import annotations

import sys

USAGE = """usage: kernel-broker COMMAND [ARGS]

commands:
  serve   start the broker (kernel-broker serve --help-all lists every option)
  run     execute a notebook on a broker kernel (kernel-broker run --help)
  kernels install bash|deno|r   install a kernel in another language and register its kernelspec
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "serve":
        from .app import main as serve

        serve(rest)
    elif command == "run":
        from .client.run import main as run

        run(rest)
    elif command == "kernels":
        from .kernels_install import main as kernels

        kernels(rest)
    else:
        print(USAGE, file=sys.stderr)
        sys.exit(0 if command in ("-h", "--help") else 2)
