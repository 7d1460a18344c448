"""The structured result of running code in a kernel (after e2b's ``Execution``/``Result``).

Every MIME type of a display message becomes a named field, unknown types are kept,
errors are structured, and what happened to the kernel (timeout, interrupt, restart,
death) is stated explicitly so that a model can be told the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ansi import strip_ansi

# MIME type -> field name; anything else lands in Result.extra.
MIME_FIELDS = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/json": "json",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/svg+xml": "svg",
    "text/latex": "latex",
    "application/javascript": "javascript",
    "application/pdf": "pdf",
}
IMAGE_TYPES = ("image/png", "image/jpeg")


def _text(value: Any) -> Any:
    # nbformat allows multiline strings as lists of lines
    return "".join(value) if isinstance(value, list) else value


@dataclass
class Result:
    """One ``display_data`` or ``execute_result``: each MIME type as a named field."""

    text: str | None = None
    markdown: str | None = None
    html: str | None = None
    json: Any = None
    png: str | None = None  # base64, as the kernel sent it
    jpeg: str | None = None
    svg: str | None = None
    latex: str | None = None
    javascript: str | None = None
    pdf: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    is_main_result: bool = False  # an execute_result (the value of the last expression)

    @classmethod
    def from_bundle(
        cls, data: dict[str, Any], metadata: dict[str, Any] | None = None, main: bool = False
    ) -> Result:
        result = cls(metadata=metadata or {}, is_main_result=main)
        for mime, value in data.items():
            name = MIME_FIELDS.get(mime)
            if name is None:
                result.extra[mime] = value
            else:
                setattr(result, name, value if name == "json" else _text(value))
        return result

    def bundle(self) -> dict[str, Any]:
        """The MIME bundle again (for notebooks)."""
        out = {mime: getattr(self, name) for mime, name in MIME_FIELDS.items()}
        return {k: v for k, v in {**out, **self.extra}.items() if v is not None}

    def formats(self) -> list[str]:
        """The MIME types this result carries."""
        return list(self.bundle())


@dataclass
class ExecutionError:
    """An exception raised by the code: its class name, message and plain-text traceback."""

    name: str
    value: str
    traceback: str

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> ExecutionError:
        return cls(
            name=content.get("ename", ""),
            value=strip_ansi(content.get("evalue", "")),
            traceback=strip_ansi("\n".join(content.get("traceback") or [])),
        )


@dataclass
class Logs:
    """Everything printed, as the chunks arrived."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


@dataclass
class Execution:
    """What running one piece of code produced, and what happened to the kernel."""

    results: list[Result] = field(default_factory=list)
    logs: Logs = field(default_factory=Logs)
    error: ExecutionError | None = None
    execution_count: int | None = None
    # nbformat v4 output dicts in arrival order, for notebook transcripts
    outputs: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    interrupted: bool = False
    kernel_restarted: bool = False
    kernel_died: bool = False
    restart_reason: str = ""  # "timeout", "crash", or "" when no restart happened
    # the kernel restarted between the previous execution and this one (state lost);
    # this code then ran on the fresh kernel
    restarted_before: bool = False

    @property
    def text(self) -> str | None:
        """The text of the main result (the value of the last expression), if any."""
        main = next((r for r in self.results if r.is_main_result), None)
        return main.text if main else None

    @property
    def stdout(self) -> str:
        return "".join(self.logs.stdout)

    @property
    def stderr(self) -> str:
        return "".join(self.logs.stderr)

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without an error or a lost kernel."""
        return not (self.error or self.timed_out or self.kernel_restarted or self.kernel_died)

    def notice(self) -> str:
        """A plain sentence about the kernel's fate, or "" when nothing unusual happened."""
        if self.kernel_died:
            return (
                "The kernel died and could not be restarted: all variables, imports and "
                "in-memory state are gone."
            )
        if self.kernel_restarted and self.restart_reason == "timeout":
            return (
                "The execution timed out and did not stop when interrupted, so the kernel was "
                "restarted: all variables, imports and in-memory state are gone; files on "
                "disk remain. Re-run any setup code you need."
            )
        if self.kernel_restarted:
            return (
                "The kernel crashed while running this code and was restarted: all variables, "
                "imports and in-memory state are gone; files on disk remain. Re-run any "
                "setup code you need."
            )
        if self.timed_out:
            return (
                "The execution timed out and was interrupted (KeyboardInterrupt); the kernel "
                "and its variables are still there."
            )
        if self.restarted_before:
            return (
                "The kernel had restarted before this code ran (it crashed or was restarted "
                "since the previous execution): earlier variables, imports and in-memory "
                "state are gone; this code ran on the fresh kernel."
            )
        return ""


def execution_from_events(events: list[dict[str, Any]]) -> Execution:
    """The ``Execution`` that the events of the HTTP execute API describe.

    ``events`` are as ``POST /api/kernels/{id}/execute`` streams them (plain text, no ANSI):
    ``stdout``, ``stderr``, ``display_data``, ``execute_result``, ``error``,
    ``clear_output`` and a final ``end`` whose status says what happened to the kernel.
    """
    execution = Execution()
    clear_pending = False  # clear_output(wait=True) clears when the next output arrives
    for event in events:
        kind = event.get("type")
        if clear_pending and kind in ("stdout", "stderr", "display_data", "execute_result"):
            execution.results.clear()
            execution.logs = Logs()
            clear_pending = False
        if kind in ("stdout", "stderr"):
            getattr(execution.logs, kind).append(event.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            main = kind == "execute_result"
            result = Result.from_bundle(event.get("data") or {}, event.get("metadata"), main=main)
            execution.results.append(result)
        elif kind == "error":
            traceback = event.get("traceback") or []
            execution.error = ExecutionError(
                name=event.get("name", ""),
                value=event.get("value", ""),
                traceback="\n".join(traceback) if isinstance(traceback, list) else str(traceback),
            )
        elif kind == "clear_output":
            clear_pending = True
            if not event.get("wait"):
                execution.results.clear()
                execution.logs = Logs()
                clear_pending = False
        elif kind == "end":
            execution.execution_count = event.get("execution_count")
            status = event.get("status")
            execution.timed_out = status == "timeout"
            execution.interrupted = status in ("timeout", "cancelled")
            if status == "aborted":  # the kernel restarted or died under the code
                execution.kernel_restarted = True
                execution.restart_reason = "crash"
    return execution
