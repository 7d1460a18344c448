"""Durability without a flag: the per-user state directory, its lock, the watchdog that ends
the kernels of a broker that does not come back, and --no-state.

Every broker here has XDG directories of its own under the test's tmp directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.processes import wait_exited
from broker.watchdog import end_kernel

from .broker_process import (
    KERNEL_BROKER,
    RunningBroker,
    default_state_dir,
    free_port,
    kill_9,
    kill_recorded_kernels,
    launch,
    lock_holder,
    serve_with_generated_token,
    start_broker,
    xdg_env,
)

pytestmark = pytest.mark.slow

PIDS = "import os; print(os.getpid())"


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    """A free port for brokers with the default state directory; what they leave is ended."""
    number = free_port()
    yield number
    kill_recorded_kernels(default_state_dir(tmp_path, number))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"
    kill_recorded_kernels(tmp_path / "state")


def readme_serve(tmp: Path, port: int, broker_env: dict[str, str]) -> RunningBroker:
    """``kernel-broker serve`` as the README runs it: no flags; port and token from the
    environment (BROKER_PORT, BROKER_TOKEN), so the test does not take 8889."""
    env = {
        **os.environ,
        **broker_env,
        **xdg_env(tmp),
        "BROKER_PORT": str(port),
        "BROKER_TOKEN": "readme-token",
    }
    return launch(tmp, [str(KERNEL_BROKER), "serve"], env, "readme-token")


def test_the_readme_serve_command_keeps_kernel_and_variables_across_kill_9(
    tmp_path: Path, port: int, broker_env: dict[str, str]
) -> None:
    first = readme_serve(tmp_path, port, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "answer = 42")
    kill_9(first)
    second = readme_serve(tmp_path, port, broker_env)
    try:
        assert kernel in [k["id"] for k in second.request("GET", "/api/kernels").json()]
        assert second.stdout(kernel, "print(answer)") == "42\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


def test_a_generated_token_is_kept_so_clients_reconnect_after_kill_9(
    tmp_path: Path, port: int, broker_env: dict[str, str]
) -> None:
    first = serve_with_generated_token(tmp_path, port, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "answer = 42")
    token_file = default_state_dir(tmp_path, port) / "token"
    assert token_file.read_text().strip() == first.token
    assert token_file.stat().st_mode & 0o777 == 0o600
    kill_9(first)
    second = serve_with_generated_token(tmp_path, port, broker_env)
    try:
        assert second.token == first.token
        assert second.stdout(kernel, "print(answer)") == "42\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


def test_without_a_state_directory_each_broker_generates_a_new_token(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    env = {**broker_env, "BROKER_STATE_DIR": ""}
    tokens = []
    for _ in range(2):
        broker = serve_with_generated_token(tmp_path, free_port(), env)
        tokens.append(broker.token)
        assert broker.request("GET", "/api/kernels").status_code == 200
        broker.stop()
    assert tokens[0] != tokens[1]
    assert not list((tmp_path / "xdg").rglob("token"))


@pytest.mark.parametrize("end", ["kill -9", "SIGTERM"])
def test_kernels_of_a_broker_that_does_not_return_end_after_the_orphan_timeout(
    tmp_path: Path, port: int, broker_env: dict[str, str], end: str
) -> None:
    timeout = 3.0
    broker = start_broker(
        tmp_path, "--pool-size=0", f"--StateDir.orphan_timeout={timeout}", env=broker_env, port=port
    )
    kernel = broker.start_kernel()
    pid = int(broker.stdout(kernel, PIDS))
    code = "import subprocess; print(subprocess.Popen(['sleep', '600']).pid)"
    child = int(broker.stdout(kernel, code))  # in the kernel's process group
    state = default_state_dir(tmp_path, port)
    watchdog = lock_holder(state)["watchdog"]
    if end == "SIGTERM":
        assert broker.stop() == 0
    else:
        kill_9(broker)
    gone = time.monotonic()
    assert wait_exited(pid, timeout + 60), "the kernel outlived the orphan timeout"
    assert time.monotonic() - gone >= timeout - 0.5, "the kernel ended before the timeout"
    assert wait_exited(child, 10), "the kernel's child outlived it"
    assert wait_exited(watchdog, 30), "the watchdog did not finish"
    assert not list((state / "kernels").glob("*.json"))
    assert (
        f"kernel {kernel}: pid {pid} and its process group ended"
        in (state / "watchdog.log").read_text()
    )


def test_a_broker_that_takes_over_stands_the_previous_watchdog_down(
    tmp_path: Path, state_dir: Path, broker_env: dict[str, str]
) -> None:
    first = start_broker(tmp_path, f"--state-dir={state_dir}", "--pool-size=0", env=broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "x = 'still here'")
    kill_9(first)
    old_watchdog = lock_holder(state_dir)["watchdog"]
    second = start_broker(tmp_path, f"--state-dir={state_dir}", "--pool-size=0", env=broker_env)
    try:
        assert wait_exited(old_watchdog, 30)
        assert lock_holder(state_dir)["pid"] == second.proc.pid
        assert second.stdout(kernel, "print(x)") == "still here\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


def test_a_second_broker_on_the_same_state_dir_fails_in_one_line_naming_the_first(
    tmp_path: Path, state_dir: Path, broker_env: dict[str, str]
) -> None:
    first = start_broker(tmp_path, f"--state-dir={state_dir}", "--pool-size=0", env=broker_env)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "broker", "serve", "--port=0", f"--state-dir={state_dir}"],
            env={**os.environ, **broker_env, **xdg_env(tmp_path)},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"in use by the broker with pid {first.proc.pid}" in lines[0]
        assert "--state-dir" in lines[0] and "--no-state" in lines[0]
    finally:
        first.stop()


def test_brokers_on_different_ports_keep_different_records(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    ports = [free_port(), free_port()]
    brokers = [start_broker(tmp_path, "--pool-size=0", env=broker_env, port=p) for p in ports]
    try:
        for broker, p in zip(brokers, ports, strict=True):
            assert lock_holder(default_state_dir(tmp_path, p))["pid"] == broker.proc.pid
    finally:
        for broker in brokers:
            broker.stop()


def test_no_state_keeps_no_records_and_sigterm_ends_the_kernels(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    p = free_port()  # a fixed port: without --no-state this broker would keep records
    broker = start_broker(tmp_path, "--no-state", "--pool-size=0", env=broker_env, port=p)
    kernel = broker.start_kernel()
    pid = int(broker.stdout(kernel, PIDS))
    assert broker.stop() == 0
    assert wait_exited(pid, 0), "the kernel outlived a broker with --no-state"
    assert not (tmp_path / "xdg" / "state").exists()


def test_a_broker_on_port_0_keeps_no_records_by_default(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    """Its successor would listen elsewhere: nobody could come back for its kernels."""
    broker = start_broker(tmp_path, "--pool-size=0", env=broker_env)
    broker.stop()
    assert not (tmp_path / "xdg" / "state").exists()


def test_the_watchdog_leaves_a_process_alone_that_is_no_longer_the_recorded_kernel(
    tmp_path: Path,
) -> None:
    """A pid recorded long ago may belong to someone else now: its command line does not
    name the kernel's connection file, so it is not signalled."""
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        record = {
            "id": "k",
            "connection_file": str(tmp_path / "run" / "k" / "connection.json"),
            "provisioner_info": {"pid": stranger.pid, "pgid": stranger.pid},
        }
        assert "no longer this kernel" in end_kernel(record)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
