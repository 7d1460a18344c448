"""The operator's settings for the file API."""

from __future__ import annotations

from traitlets import Float, Int
from traitlets.config import Configurable


class FileLimits(Configurable):
    """Sizes and waits of file transfers; GET /api/spec.yaml states the upload limit."""

    max_upload_bytes = Int(
        1024**3,
        config=True,
        help="Largest upload request body (a PUT's file, or a multipart form's total); 413 "
        "beyond. It streams through the broker in chunks, so this bounds disk, not memory.",
    )
    chunk_bytes = Int(
        4 * 1024 * 1024,
        config=True,
        help="Bytes per call into the kernel, both ways: the most the broker holds of one "
        "transfer (a download chunk travels base64-encoded, a third more).",
    )
    timeout = Float(
        300.0,
        config=True,
        help="Seconds a kernel has to answer each file call; it answers after the code it "
        "is running, so a busy kernel makes the request fail with 504.",
    )
    max_list_entries = Int(
        10_000, config=True, help="Most entries a directory listing returns (truncated after)."
    )
    max_files_per_request = Int(
        100, config=True, help="Most files in one multipart upload (400 beyond)."
    )
