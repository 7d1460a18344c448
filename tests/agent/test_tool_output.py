"""What the model reads: truncation, image fitting and the plain-text rendering (no kernel)."""

from __future__ import annotations

import base64
import io

from PIL import Image

from broker.client.images import fit_image
from broker.client.results import Execution, ExecutionError, Logs, Result
from broker.client.tool_output import render, truncate


def make_png(width: int, height: int) -> str:
    img = Image.effect_mandelbrot((width, height), (-2, -1.5, 1, 1.5), 64).convert("RGB")
    out = io.BytesIO()
    img.save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_short_text_is_untouched() -> None:
    assert truncate("abc", 10) == "abc"


def test_truncation_keeps_head_and_tail_and_states_the_size() -> None:
    text = "H" * 500 + "M" * 10_000 + "T" * 500
    out = truncate(text, 900)
    assert out.startswith("H" * 500) and out.endswith("T" * 300)
    assert "full output was 11000 characters" in out and len(out) < 1100


def test_large_image_is_downscaled_under_the_cap() -> None:
    mime, b64 = fit_image(make_png(2400, 1600), "image/png", 30_000)
    raw = base64.b64decode(b64)
    with Image.open(io.BytesIO(raw)) as img:
        assert mime == "image/jpeg" and len(raw) <= 30_000 and max(img.size) <= 1024


def test_small_image_passes_through() -> None:
    b64 = make_png(20, 10)
    assert fit_image(b64, "image/png", 60_000) == ("image/png", b64)


def test_render_orders_output_and_states_the_kernel_fate() -> None:
    execution = Execution(
        results=[
            Result(text="<Figure>", png=make_png(8, 8)),
            Result(text="3", is_main_result=True),
        ],
        logs=Logs(stdout=["a\n"], stderr=["warn\n"]),
        error=ExecutionError("KeyboardInterrupt", "", "KeyboardInterrupt"),
        execution_count=4,
        timed_out=True,
        interrupted=True,
    )
    out = render(execution, max_chars=1000, accepts_images=True, max_image_bytes=10_000)
    assert out.text.splitlines()[:5] == [
        "a",
        "[stderr]",
        "warn",
        "[image/png image 1 attached below]",
        "Out[4]: 3",
    ]
    assert out.text.endswith("the kernel and its variables are still there.]")
    assert [mime for mime, _ in out.images] == ["image/png"]


def test_empty_execution_says_so() -> None:
    out = render(Execution(), max_chars=100, accepts_images=False, max_image_bytes=1)
    assert out.text == "[no output]" and out.images == []
