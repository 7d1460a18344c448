"""Only allow-listed variables reach a kernel; the broker's own environment never does.

Enterprise Gateway copied its whole environment into kernels when a start request
carried no ``env``. Here the broker runs with secrets in its environment and kernels
are started every way a client can: no env, ``"env": null``, an empty env, and
through a session. Each kernel's environment holds only the inherited basics
(--KernelRegistry.env_inherit), KERNEL_* variables, the operator's allow-list, and
what the kernel launcher itself sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from broker.registry import KernelRegistry

from ..broker_process import RunningBroker, start_broker

BROKER_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-Xq81",
    "BROKER_DB_PASSWORD": "db-password-Kd02",
    "ALLOWED_BUT_NOT_SENT": "allowed-Zz93",
}
# Set by jupyter_client / ipykernel when they launch the kernel, not taken from the broker.
LAUNCHER_SET = {"JPY_PARENT_PID"}
INHERITED = set(KernelRegistry.class_traits()["env_inherit"].default())
# What the kernel process was started with (os.environ has what ipykernel set since: TERM, PAGER...)
PRINT_ENV = (
    "import json; raw = open('/proc/self/environ', 'rb').read().decode().split('\\0')\n"
    "print(json.dumps(dict(v.split('=', 1) for v in raw if v)))"
)


@pytest.fixture(scope="module")
def env_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    b = start_broker(
        tmp_path_factory.mktemp("env"),
        "--env-allowlist=ALLOWED_BUT_NOT_SENT",
        env={**broker_env, **BROKER_SECRETS},
    )
    yield b
    b.stop()


def _kernel_env(b: RunningBroker, kernel: str) -> dict[str, str]:
    try:
        return json.loads(b.stdout(kernel, PRINT_ENV))
    finally:
        b.delete_kernel(kernel)


def _start(b: RunningBroker, how: str) -> str:
    bodies: dict[str, Any] = {"no body": None, "no env": {}, "env null": {"env": None}}
    if how == "session":
        r = b.request("POST", "/api/sessions", {"path": "env.ipynb"})
        assert r.status_code == 201, r.text
        return r.json()["kernel"]["id"]
    r = b.request("POST", "/api/kernels", bodies[how]) if how != "empty env" else None
    if r is None:
        r = b.request("POST", "/api/kernels", {"env": {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["no body", "no env", "env null", "empty env", "session"])
def test_a_kernel_started_without_env_gets_none_of_the_brokers(
    env_broker: RunningBroker, how: str
) -> None:
    env = _kernel_env(env_broker, _start(env_broker, how))
    unexpected = set(env) - INHERITED - LAUNCHER_SET - {"KERNEL_USERNAME"}
    assert unexpected == set()
    assert not set(BROKER_SECRETS.values()) & set(env.values())
    assert "JUPYTER_PATH" not in env  # the broker's own configuration stays with it


def test_allow_listed_and_kernel_variables_are_the_only_additions(
    env_broker: RunningBroker,
) -> None:
    kernel = env_broker.start_kernel(KERNEL_GREETING="hi", ALLOWED_BUT_NOT_SENT="from-client")
    env = _kernel_env(env_broker, kernel)
    added = set(env) - INHERITED - LAUNCHER_SET
    assert added == {"KERNEL_USERNAME", "KERNEL_GREETING", "ALLOWED_BUT_NOT_SENT"}
    assert env["ALLOWED_BUT_NOT_SENT"] == "from-client"  # the client's value, not the broker's


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "\x01", "esc\x1b[31m", "del\x7f", "cr\r", "nel\x85", "csi\x9b", "vt\x0b"],
    ids=repr,
)
def test_values_with_control_characters_are_refused(env_broker: RunningBroker, value: str) -> None:
    r = env_broker.request("POST", "/api/kernels", {"env": {"KERNEL_X": value}})
    assert r.status_code == 400
    assert "control characters" in r.json()["message"]


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({"KERNEL_X": "x" * (32 * 1024 + 1)}, 400),
        ({"KERNEL_X=Y": "x"}, 400),
        ({"KERNEL X": "x"}, 400),
        ({"1KERNEL": "x"}, 400),
        ({"": "x"}, 400),
        ({"K" * 129: "x"}, 400),
        ({"LD_PRELOAD": "/tmp/evil.so"}, 403),
        ({"PATH": "/tmp/evil"}, 403),
        ({"PYTHONPATH": "/tmp/evil"}, 403),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_names_long_values_and_unlisted_names_are_refused(
    env_broker: RunningBroker, env: dict[str, str], status: int
) -> None:
    r = env_broker.request("POST", "/api/kernels", {"env": env})
    assert r.status_code == status, r.text
    if status == 403:
        assert "--env-allowlist" in r.json()["message"]


@pytest.mark.slow
@pytest.mark.parametrize("value", ["two\nlines", "tab\there", "unicode \u00e9\u2028\U0001f600"])
def test_tab_newline_and_unicode_values_are_accepted(env_broker: RunningBroker, value: str) -> None:
    kernel = env_broker.start_kernel(KERNEL_X=value)
    assert _kernel_env(env_broker, kernel)["KERNEL_X"] == value
