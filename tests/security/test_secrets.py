"""Tokens are compared in constant time, and no secret reaches a log or an error message.

The leak check runs a broker at debug level through failures (wrong and near-miss
tokens in header and query, refused environments, bad bodies), a kernel start and
a kernel crash with its automatic restart, then searches the whole log and every
error body for each secret: the users file's tokens, the tokens presented, the
kernel's HMAC key (read from inside the kernel) and a secret passed in KERNEL_* env.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from pathlib import Path

import pytest
import requests

from broker import auth
from broker.auth import Authenticator, User
from broker.client import ChannelsConnection

from ..broker_process import RunningBroker, start_broker

pytestmark = pytest.mark.slow

USERS = {
    "users": [
        {"name": "alice", "token": "alice-Zq83kd92nfA0"},
        {"name": "root", "token": "admin-Pw07xk21mcV9", "admin": True},
    ]
}
ALICE, ADMIN = (u["token"] for u in USERS["users"])
WRONG = ["wrong-Hy62bd01kqT4", ALICE[:-1], ALICE + "x", ALICE.upper(), f" {ALICE}x "]
ENV_SECRET = "envsecret-Lm45re88tuQ1"


def test_every_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac.compare_digest, against every entry: where a token matches does not show."""
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    users = Authenticator([("t-one", User("a")), ("t-two", User("b")), ("t-three", User("c"))])
    for presented, name in [("t-one", "a"), ("t-three", "c"), ("t-on", None), ("x", None)]:
        compared.clear()
        user = users.authenticate(presented)
        assert (user.name if user else None) == name
        assert compared == [b"t-one", b"t-two", b"t-three"]


def _refusals(b: RunningBroker, kernel: str) -> list[requests.Response]:
    """Requests that fail, each carrying a secret where a careless broker would echo it.

    (Names and paths are echoed in errors on purpose: they are not secret fields.)
    """
    out = []
    for token in WRONG:
        out.append(b.request("GET", f"/api/kernels/{kernel}", token=token))
        out.append(requests.get(f"{b.url}/api/kernels", params={"token": token}, timeout=30))
    out.append(b.request("POST", "/api/kernels", {"env": {"MY_TOKEN": ENV_SECRET}}))
    out.append(b.request("POST", "/api/kernels", {"env": {"KERNEL_X": ENV_SECRET + "\x01"}}))
    out.append(b.request("POST", "/api/kernels", data=f'{{"env": "{ENV_SECRET}'))
    return out


async def _crash_and_recover(b: RunningBroker, kernel: str) -> None:
    """Kill the kernel process; the broker restarts it and it runs code again."""
    async with await ChannelsConnection.connect(b.url, kernel, b.token) as conn:
        await conn.request("shell", "execute_request", {"code": "import os; os._exit(1)"})
        while True:
            msg = await conn.recv(timeout=60)
            if msg.msg_type == "status" and msg.content_dict()["execution_state"] == "restarting":
                break
        reply, _ = await conn.execute("1 + 1")
        assert reply.content_dict()["status"] == "ok"


HMAC_KEY_CODE = "from ipykernel.connect import get_connection_info\n" + (
    "print(get_connection_info(unpack=True)['key'].decode())"
)


async def test_no_secret_in_logs_or_error_messages(
    tmp_path: Path, broker_env: dict[str, str], figures: Counter[str]
) -> None:
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(USERS))
    b = start_broker(
        tmp_path, f"--users-file={users_file}", "--log-level=DEBUG", token=None, env=broker_env
    )
    b.token = ALICE
    try:
        kernel = b.start_kernel(KERNEL_API_KEY=ENV_SECRET)
        assert b.stdout(kernel, "import os; print(os.environ['KERNEL_API_KEY'])").strip()
        hmac_key = b.stdout(kernel, HMAC_KEY_CODE).strip()
        refusals = _refusals(b, kernel)
        await _crash_and_recover(b, kernel)
        restarted_key = b.stdout(kernel, HMAC_KEY_CODE).strip()
    finally:
        b.stop()
    assert all(r.status_code >= 400 for r in refusals)
    places = {"log": b.log(), **{f"error {i}": r.text for i, r in enumerate(refusals)}}
    secrets = {ALICE, ADMIN, ENV_SECRET, hmac_key, restarted_key, *(w.strip() for w in WRONG)}
    assert len(hmac_key) >= 32 and "kernel died" in places["log"]
    leaks = [(s, where) for s in secrets for where, text in places.items() if s in text]
    figures["secrets_checked"] += len(secrets)
    figures["leaks"] += len(leaks)
    assert leaks == []
