"""Shared by the security tests: the figures they produce, reported after the run.

Each test adds what it tried (fuzz cases, websocket frames) and what went wrong
(5xx answers, leaked secrets) to one tally; the terminal summary prints it so that
docs/security.md can quote a command and its numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from ..broker_process import RunningBroker, start_broker

FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="session")
def figures() -> Counter[str]:
    """The run's tally: ``figures["rest_cases"] += 1`` and so on."""
    return FIGURES


def module_broker(
    factory: pytest.TempPathFactory, env: dict, name: str, *args: str
) -> Iterator[RunningBroker]:
    """A broker for one fuzzing module, with these arguments; stopped after the module."""
    broker = start_broker(factory.mktemp(name), *args, env=env)
    try:
        yield broker
    finally:
        broker.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        line = ", ".join(f"{name}={FIGURES[name]}" for name in sorted(FIGURES))
        terminalreporter.write_sep("-", "security figures")
        terminalreporter.write_line(line)
