"""Regressions for the bad input the fuzzers found: each answers a clear JSON error."""

from __future__ import annotations

from ..broker_process import RunningBroker


def test_405_says_which_methods_are_allowed(broker: RunningBroker) -> None:
    r = broker.request("TRACE", "/api/kernels")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"
    assert set(r.json()) == {"reason", "message"}
