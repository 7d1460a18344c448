"""The one time format of the API: the kernel model's ``last_activity`` format."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(ts: float) -> str:
    """The timestamp format Jupyter clients parse: microseconds and Z are mandatory."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
