"""`kernel-broker run NOTEBOOK`: execute a notebook on a broker kernel and save the result."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from ..options import OptionParser, http_url
from .embedded import EmbeddedBroker
from .failures import Options, explain
from .manager import RemoteKernelManager
from .parameters import inject_parameters, parse_value
from .progress import Progress, plain

# Exit statuses: a cell failed or timed out; bad usage (argparse); the kernel or broker failed.
EXIT_CELL_ERROR = 1
EXIT_USAGE = 2
EXIT_KERNEL_FAILED = 3
RUN_OPTIONS = Options(url="--url or BROKER_URL", token="--token or BROKER_TOKEN", kernel="--kernel")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = OptionParser(
        prog="kernel-broker run",
        description="Execute a notebook on a broker kernel and write the executed notebook.",
    )
    p.add_argument("notebook", type=Path, help="the .ipynb file to run")
    p.add_argument(
        "--url",
        default=os.environ.get("BROKER_URL", ""),
        type=http_url,
        help="broker base URL (env BROKER_URL); without one, a private broker is started "
        "on 127.0.0.1 and stopped afterwards",
    )
    p.add_argument("--token", default=os.environ.get("BROKER_TOKEN", ""), help="env BROKER_TOKEN")
    p.add_argument("--kernel", default="", help="kernelspec name (default: the notebook's)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="inject NAME = VALUE (bool, None, int and float values are converted)",
    )
    p.add_argument(
        "-r",
        "--raw-parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="inject NAME = VALUE as a string",
    )
    p.add_argument("--output", "-o", type=Path, help="where to write (default: NOTEBOOK.out.ipynb)")
    p.add_argument("--timeout", type=float, default=None, help="seconds each cell may run")
    p.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds to wait for the kernel"
    )
    return p.parse_args(argv)


def load_notebook(args: argparse.Namespace) -> nbformat.NotebookNode:
    nb = nbformat.read(args.notebook, as_version=4)
    params: dict[str, Any] = {name: parse_value(value) for name, value in args.parameter}
    params.update(dict(args.raw_parameter))
    if params:
        inject_parameters(nb, params)
    return nb


def kernel_name(nb: nbformat.NotebookNode, args: argparse.Namespace) -> str:
    """``--kernel``, else the notebook's kernelspec, else "" (the broker's default)."""
    return args.kernel or nb.metadata.get("kernelspec", {}).get("name", "")


async def execute(
    nb: nbformat.NotebookNode,
    url: str,
    token: str,
    args: argparse.Namespace,
    progress: Progress,
) -> int:
    """Run every cell on a new kernel, which is shut down whatever happens."""
    km = RemoteKernelManager(url=url, token=token)
    km.kernel_name = kernel_name(nb, args)
    client = NotebookClient(
        nb,
        km=km,
        timeout=int(args.timeout) if args.timeout else None,
        startup_timeout=int(args.startup_timeout),
        **progress.hooks(),
    )
    try:
        await client.async_execute()
        progress.message(f"done: {progress.done} cells")
        return 0
    except CellTimeoutError as e:
        progress.message(f"cell {progress.current} timed out:\n{plain(str(e))}")
        return EXIT_CELL_ERROR
    except CellExecutionError as e:
        progress.message(f"cell {progress.current} failed:\n{e if progress.tty else plain(str(e))}")
        return EXIT_CELL_ERROR
    except DeadKernelError:
        why = client.kc.lost_reason if client.kc is not None else ""
        progress.message(f"kernel died while running cell {progress.current}: {why}")
        return EXIT_KERNEL_FAILED
    finally:
        await _shutdown(km, client, progress)


async def _shutdown(km: RemoteKernelManager, client: NotebookClient, progress: Progress) -> None:
    if client.kc is not None:
        await client.kc.stop_channels()
    try:
        await km.shutdown_kernel(now=True)
    except Exception as e:  # the broker may be gone: say so, and let the run's result stand
        progress.message(f"warning: could not shut down kernel {km.kernel_id}: {e}")


def output_path(args: argparse.Namespace) -> Path:
    return args.output or args.notebook.with_suffix(".out.ipynb")


def write_output(nb: nbformat.NotebookNode, args: argparse.Namespace) -> None:
    out = output_path(args)
    if str(out) == "-":
        nbformat.write(nb, sys.stdout)
        return
    nbformat.write(nb, out)
    print(f"wrote {out}", file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    try:
        nb = load_notebook(args)
    except (OSError, ValueError) as e:
        print(f"kernel-broker run: {e}", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress(nb)
    status = EXIT_KERNEL_FAILED
    try:
        if args.url:
            status = await execute(nb, args.url, args.token, args, progress)
        else:
            async with EmbeddedBroker(args.notebook.resolve().parent) as broker:
                status = await execute(nb, broker.url, broker.token, args, progress)
    except Exception as e:  # the kernel never started or the broker failed: report, not trace
        why = (
            await explain(e, args.url, args.token, RUN_OPTIONS, kernel_name(nb, args))
            if args.url
            else f"{type(e).__name__}: {e}"
        )
        print(f"kernel-broker run: {why}", file=sys.stderr)
    finally:
        # an output is replaced only by one that ran: a failed start keeps the last result
        if progress.started or status == 0:
            write_output(nb, args)
        else:
            print(
                f"kernel-broker run: nothing ran, so {output_path(args)} was not written",
                file=sys.stderr,
            )
    return status


def main(argv: list[str]) -> None:
    """Entry point of ``kernel-broker run``."""
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))
    sys.exit(130)
