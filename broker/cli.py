"""`kernel-broker serve | run NOTEBOOK | mcp`: the command line."""

from __future__ import annotations

import sys

USAGE = """usage: kernel-broker COMMAND [ARGS]

commands:
  serve   start the broker (kernel-broker serve --help-all lists every option)
  run     execute a notebook on a broker kernel (kernel-broker run --help)
  mcp     serve a broker's MCP tools over stdio for desktop agents (kernel-broker mcp --help)
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
    elif command == "mcp":
        from .mcp.stdio import main as mcp_stdio

        mcp_stdio(rest)
    elif command == "kernels":
        from .kernels_install import main as kernels

        kernels(rest)
    elif command and command not in ("-h", "--help"):
        from .options import unknown_command

        unknown_command("kernel-broker", command, USAGE)
    else:
        print(USAGE, file=sys.stderr)
        sys.exit(0 if command else 2)
