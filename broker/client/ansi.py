"""ANSI terminal escape codes out of text, for clients that want plain text.

IPython colours its tracebacks, and libraries (rich, colorama, logging handlers) colour
what they print. A pure function shared by the broker's HTTP execute API and llm_agent.
"""

from __future__ import annotations

import re

# CSI (colours, cursor moves: ESC [ ... final), OSC (titles, hyperlinks: ESC ] ... BEL or
# ESC \), character-set selection (ESC ( B) and the other two-byte escapes (ESC =, ESC M).
_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+#][0-9A-Za-z]|[=>@-Z\\-_])"
)


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences; everything else, ``\\r`` too, is kept."""
    return _ANSI.sub("", text) if "\x1b" in text else text
