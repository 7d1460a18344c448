"""Shared by the security tests: the figures they produce, reported after the run.

Each test adds what it tried (fuzz cases, websocket frames) and what went wrong
(5xx answers, leaked secrets) to one tally; the terminal summary prints it so that
docs/security.md can quote a command and its numbers.
"""

from __future__ import annotations

from collections import Counter

import pytest

FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="session")
def figures() -> Counter[str]:
    """The run's tally: ``figures["rest_cases"] += 1`` and so on."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        line = ", ".join(f"{name}={FIGURES[name]}" for name in sorted(FIGURES))
        terminalreporter.write_sep("-", "security figures")
        terminalreporter.write_line(line)
