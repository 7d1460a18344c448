"""The tool table: every MCP tool's name, description, argument schema and function.

The descriptions are written for a model that meets the tools with no other prompt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import CallToolResult, ToolAnnotations

from .file_tools import DownloadArgs, UploadArgs, download_file, upload_file
from .tools import (
    Args,
    Call,
    ExecuteArgs,
    ExecutionArgs,
    KernelArgs,
    NoArgs,
    RestoreArgs,
    StartArgs,
    execute,
    get_execution,
    interrupt,
    list_kernels,
    list_kernelspecs,
    restart,
    restore,
    shutdown_kernel,
    snapshot,
    start_kernel,
)


@dataclass(frozen=True)
class Tool:
    """A tool as listed: name, description, argument model, and what it runs."""

    name: str
    description: str
    args: type[Args]
    run: Callable[[Call, Any], Awaitable[CallToolResult]]
    annotations: ToolAnnotations
    # Whether a client that goes away may cancel it: waiting for output, yes; a start,
    # restart, upload or shutdown cut short would leave a kernel or a file half made.
    cancellable: bool = False


def _hints(read_only: bool = False, destructive: bool = False) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=read_only, destructive_hint=destructive)


TOOLS = [
    Tool(
        "list_kernelspecs",
        "List the kinds of kernel (kernelspecs) you may start: name, display name, language, "
        "and which is the default.",
        NoArgs,
        list_kernelspecs,
        _hints(read_only=True),
    ),
    Tool(
        "start_kernel",
        "Start a kernel (a fresh Python process by default, usually taken from a warm pool "
        "in milliseconds) and return its model; its 'id' is the kernel_id every other tool "
        "takes. Variables persist between execute calls on the same kernel. Shut it down "
        "with shutdown_kernel when done.",
        StartArgs,
        start_kernel,
        _hints(),
    ),
    Tool(
        "list_kernels",
        "List your running kernels: id, kernelspec name, execution_state (idle, busy, dead) "
        "and last activity.",
        NoArgs,
        list_kernels,
        _hints(read_only=True),
    ),
    Tool(
        "execute",
        "Run code in a kernel and return what it printed (stdout, stderr), the value of the "
        "last expression, the error with its traceback, and plots as PNG/JPEG images. Long "
        "output keeps its head and tail and states the full size. Executions on one kernel "
        "run one at a time in order. With background=true, return at once with an "
        "execution_id for get_execution.",
        ExecuteArgs,
        execute,
        _hints(),
        cancellable=True,
    ),
    Tool(
        "get_execution",
        "Read an execution started with execute (background=true): its status (queued, "
        "running, ok, error, timeout, cancelled, aborted) and its output so far; optionally "
        "wait up to 'wait' seconds for it to finish.",
        ExecutionArgs,
        get_execution,
        _hints(read_only=True),
        cancellable=True,
    ),
    Tool(
        "interrupt",
        "Interrupt the code a kernel is running (like Ctrl-C: Python raises KeyboardInterrupt); "
        "variables are kept.",
        KernelArgs,
        interrupt,
        _hints(),
    ),
    Tool(
        "restart",
        "Restart a kernel: all its variables and imports are lost; files on disk stay.",
        KernelArgs,
        restart,
        _hints(destructive=True),
    ),
    Tool(
        "upload_file",
        "Write a file into a kernel's working directory (text, or binary as base64), e.g. a "
        "data set for code to read with a relative path. Files stay across restarts.",
        UploadArgs,
        upload_file,
        _hints(),
    ),
    Tool(
        "download_file",
        "Read a file from a kernel's working directory, e.g. one your code wrote: text "
        "files come back as text, PNG/JPEG as images, others as base64. A directory "
        "(or '') comes back as a listing of names, sizes and times.",
        DownloadArgs,
        download_file,
        _hints(read_only=True),
    ),
    Tool(
        "snapshot",
        "Save a kernel's picklable variables to a snapshot; returns its id, what was saved and "
        "what was skipped and why. Restore it later, into this or another kernel, with restore.",
        KernelArgs,
        snapshot,
        _hints(),
    ),
    Tool(
        "restore",
        "Load the variables of a snapshot into a kernel; returns which came back and which failed.",
        RestoreArgs,
        restore,
        _hints(),
    ),
    Tool(
        "shutdown_kernel",
        "Shut a kernel down for good: its process and its variables are gone.",
        KernelArgs,
        shutdown_kernel,
        _hints(destructive=True),
    ),
]
