"""The limits a broker raises so that hundreds of kernels and their websockets fit."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import zmq

from broker.capacity import zmq_context

from .broker_process import start_broker


def open_files_limits(pid: int) -> tuple[int, int]:
    """(soft, hard) "Max open files" of a process, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files limit in /proc")


def test_zmq_context_holds_more_sockets_than_zmqs_default_of_1023() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * 1100:
        pytest.skip(f"this process may open only {soft} files")
    context = zmq_context()
    sockets = [context.socket(zmq.PAIR) for _ in range(1100)]  # 220 kernels' worth
    try:
        assert context.get(zmq.MAX_SOCKETS) >= 1100
    finally:
        for sock in sockets:
            sock.close(linger=0)
        context.term()


@pytest.mark.slow
def test_broker_raises_its_soft_open_files_limit_to_the_hard_one(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip(f"the hard limit is {hard}: nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the broker inherits it
    try:
        broker = start_broker(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert open_files_limits(broker.proc.pid) == (hard, hard)
    finally:
        broker.stop()
