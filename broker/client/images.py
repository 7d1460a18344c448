"""Images for the model: downscaled under a byte cap, or described in a sentence."""

from __future__ import annotations

import base64
import io

from PIL import Image

MAX_SIDE = 1024


def image_size(b64: str) -> tuple[int, int] | None:
    """(width, height) of a base64 image, or None when it cannot be read."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
            return img.size
    except (OSError, ValueError):
        return None


def fit_image(b64: str, mime: str, max_bytes: int, max_side: int = MAX_SIDE) -> tuple[str, str]:
    """``(mime, base64)`` of the image, shrunk until its bytes fit ``max_bytes``.

    Small images are passed through untouched; larger ones are scaled down and
    re-encoded as JPEG (far smaller than PNG for plots with antialiasing).
    """
    raw = base64.b64decode(b64)
    with Image.open(io.BytesIO(raw)) as img:
        if len(raw) <= max_bytes and max(img.size) <= max_side:
            return mime, b64
        img = img.convert("RGB")
        scale = min(1.0, max_side / max(img.size))
        quality = 85
        while True:
            size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
            out = io.BytesIO()
            img.resize(size, Image.LANCZOS).save(out, "JPEG", quality=quality)
            if out.tell() <= max_bytes or max(size) <= 64:
                return "image/jpeg", base64.b64encode(out.getvalue()).decode()
            scale *= 0.75
            quality = max(50, quality - 10)


def describe_image(b64: str, mime: str) -> str:
    """A short sentence for models that cannot see images."""
    size = image_size(b64)
    dims = f"{size[0]}x{size[1]} " if size else ""
    return (
        f"[{dims}{mime} image produced and shown to the user; this model cannot view images, "
        "so describe the data numerically if needed]"
    )
