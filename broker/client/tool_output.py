"""An ``Execution`` as the model reads it: one text for the tool message, plus images."""

from __future__ import annotations

from dataclasses import dataclass, field

from .images import describe_image, fit_image
from .results import IMAGE_TYPES, Execution, Result


@dataclass
class ToolOutput:
    """The tool message text and the images (``(mime, base64)``) to show after it."""

    text: str
    images: list[tuple[str, str]] = field(default_factory=list)


def truncate(text: str, limit: int) -> str:
    """Head and tail of ``text`` around a marker giving the full size, when over ``limit``."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    omitted = len(text) - head - tail
    marker = (
        f"\n[... {omitted} characters omitted; the full output was {len(text)} characters. "
        "Print a smaller slice if you need the middle ...]\n"
    )
    return text[:head] + marker + text[-tail:]


def _result_text(result: Result) -> str:
    # what a person would read: markdown/latex/plain text; HTML only when nothing else
    for value in (result.markdown, result.latex, result.text, result.html):
        if value:
            return value
    if result.json is not None:
        return str(result.json)
    return ""


def render(
    execution: Execution, *, max_chars: int, accepts_images: bool, max_image_bytes: int
) -> ToolOutput:
    """The text (truncated) and images the model sees for one execution."""
    sections: list[str] = []
    images: list[tuple[str, str]] = []
    if execution.stdout:
        sections.append(execution.stdout.rstrip("\n"))
    if execution.stderr:
        sections.append("[stderr]\n" + execution.stderr.rstrip("\n"))
    for result in execution.results:
        image = next(((m, result.bundle()[m]) for m in IMAGE_TYPES if m in result.bundle()), None)
        if image is not None:
            mime, b64 = image
            if accepts_images:
                images.append(fit_image(b64, mime, max_image_bytes))
                sections.append(f"[{mime} image {len(images)} attached below]")
            else:
                sections.append(describe_image(b64, mime))
            continue
        text = _result_text(result)
        if text:
            prefix = f"Out[{execution.execution_count}]: " if result.is_main_result else ""
            sections.append(prefix + text)
    if execution.error:
        sections.append(
            execution.error.traceback or f"{execution.error.name}: {execution.error.value}"
        )
    body = truncate("\n".join(sections), max_chars) if sections else ""
    notice = execution.notice()
    if notice:
        body = f"{body}\n[{notice}]" if body else f"[{notice}]"
    return ToolOutput(body or "[no output]", images)
