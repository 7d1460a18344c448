"""The broker's log lines: one per event, each starting with its UTC time in ISO 8601.

``2026-12-03T06:16:33.123Z WARNING broker.http 404 GET /x: No endpoint /x; ...``
"""

from __future__ import annotations

import logging
import time
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers besides the application's own: the broker's modules, Tornado's and the MCP SDK's
# warnings and errors.
LOGGERS = {"broker": "DEBUG", "tornado": "WARNING", "mcp": "WARNING"}


class EventFormatter(logging.Formatter):
    """UTC ISO 8601 times with milliseconds; the lines of a traceback indented beneath."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        # only an event's first line starts at column 0: readers split the log on it
        return super().format(record).replace("\n", "\n    ")


def route_module_loggers(config: dict[str, Any]) -> dict[str, Any]:
    """traitlets' logging config, with the broker's module loggers on the same console."""
    for name, level in LOGGERS.items():
        config["loggers"][name] = {"level": level, "handlers": ["console"], "propagate": False}
    return config
