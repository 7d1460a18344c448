"""`kernel-broker serve` that cannot start says why in one line, exits 1; --help tells the truth."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a broker process per case


def serve(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m broker serve ARGS`` in ``tmp``, which must fail before it listens."""
    full_env = {**os.environ, "HOME": str(tmp), "XDG_STATE_HOME": str(tmp / "state"), **env}
    for name in ("BROKER_PORT", "BROKER_TOKEN", "BROKER_CERTFILE", "BROKER_USERS_FILE"):
        if name not in env:
            full_env.pop(name, None)
    cmd = [sys.executable, "-m", "broker", "serve", "--pool-size=0", *args]
    return subprocess.run(
        cmd, cwd=tmp, env=full_env, capture_output=True, text=True, timeout=60, check=False
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed start (asserts that it is one, with no traceback)."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "listening on" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernel-broker serve: "), done.stderr
    return lines[0]


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_names_port_broker_port_and_port_zero(
    tmp_path: Path, port_in_use: int
) -> None:
    line = one_line_error(serve(tmp_path, f"--port={port_in_use}"))
    assert f"port {port_in_use}" in line and "already in use" in line
    assert "--port N" in line and "BROKER_PORT" in line and "--port 0" in line


def test_a_port_in_use_from_the_environment_is_the_same_one_line(
    tmp_path: Path, port_in_use: int
) -> None:
    line = one_line_error(serve(tmp_path, BROKER_PORT=str(port_in_use)))
    assert f"port {port_in_use}" in line and "BROKER_PORT" in line


def test_an_address_not_on_this_machine_says_which_to_use(tmp_path: Path) -> None:
    line = one_line_error(serve(tmp_path, "--ip=192.0.2.1", "--port=0"))
    assert "192.0.2.1" in line and "--ip" in line and "127.0.0.1" in line


def test_a_missing_certificate_names_the_flag(tmp_path: Path) -> None:
    line = one_line_error(serve(tmp_path, "--port=0", f"--certfile={tmp_path / 'none.pem'}"))
    assert "--certfile" in line and "none.pem" in line and "PEM" in line


def test_a_file_that_is_not_a_certificate_says_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    line = one_line_error(serve(tmp_path, "--port=0", "--certfile=junk.pem"))
    assert "junk.pem" in line and "PEM certificate and its private key" in line


def test_a_key_without_a_certificate_is_refused(tmp_path: Path) -> None:
    line = one_line_error(serve(tmp_path, "--port=0", "--keyfile=key.pem"))
    assert "--keyfile" in line and "needs --certfile" in line


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("users.json", None),
        ("users.json", '{"users": ['),
        ("users.yaml", "users: ["),
        ("users.json", "[1]"),
        ("users.json", '{"users": [{"name": "alice"}]}'),
    ],
    ids=["missing", "bad-json", "bad-yaml", "not-a-mapping", "no-token"],
)
def test_a_bad_users_file_is_one_line_naming_the_file_and_its_shape(
    tmp_path: Path, name: str, text: str | None
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    line = one_line_error(serve(tmp_path, "--port=0", f"--users-file={name}"))
    assert name in line and "--users-file" in line
    assert ("cannot read" in line) if text is None else ('"users"' in line)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("none.py", None, "not found"),
        ("bad.py", "c.Broker.port = = 1\n", "SyntaxError"),
        ("bad.json", '{"Broker": ', "JSONDecodeError"),
    ],
    ids=["missing", "bad-python", "bad-json"],
)
def test_a_bad_config_file_is_one_line(tmp_path: Path, name: str, text: str | None, says: str):
    if text is not None:
        (tmp_path / name).write_text(text)
    line = one_line_error(serve(tmp_path, "--port=0", f"--config={name}"))
    assert name in line and "config file" in line and says in line


def test_an_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    line = one_line_error(serve(tmp_path, BROKER_PORT="eighty"))
    assert "BROKER_PORT='eighty'" in line and "unset" in line


def test_serve_help_shows_the_defaults_the_broker_uses() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    options = {
        block.split("=", 1)[0]: block
        for block in ("\n" + done.stdout).split("\n--")
        if block.strip()
    }
    assert "Default: '127.0.0.1'" in options["ip"]
    assert "Default: 8889" in options["port"]
    assert "Default: 'python3'" in options["default-kernel"]
    assert "Default: 'INFO'" in options["log-level"]


def test_the_environment_overrides_the_declared_default(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path), "BROKER_PORT": str(free), "BROKER_TOKEN": "t"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--pool-size=0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().endswith(f"http://127.0.0.1:{free}/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_unusable_state_directory_names_the_flags(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    line = one_line_error(serve(tmp_path, "--port=0", f"--state-dir={tmp_path / 'a-file' / 's'}"))
    assert "cannot use the state directory" in line
    assert "--state-dir" in line and "--no-state" in line


def test_an_unusable_kernel_working_directory_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    line = one_line_error(serve(tmp_path, "--port=0", XDG_DATA_HOME=str(tmp_path / "a-file")))
    assert "working directory" in line and "--KernelRegistry.working_dir" in line
