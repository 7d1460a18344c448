"""Users, ownership, kernelspec authorization and limits, on a broker with a users file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from broker.client import ChannelsConnection

from .broker_process import RunningBroker, start_users_broker

USERS = {
    "users": [
        {"name": "alice", "token": "alice-token"},
        {"name": "bob", "token": "bob-token"},
        {"name": "hub", "token": "hub-token", "impersonate": True},
        {"name": "root", "token": "admin-token", "admin": True},
    ]
}


@pytest.fixture(scope="module")
def users_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("users")
    b = start_users_broker(
        tmp, USERS, "admin-token", "--max-kernels-per-user=2", "--max-kernels=4", env=broker_env
    )
    yield b
    b.stop()


@pytest.fixture
def alice_kernel(users_broker: RunningBroker) -> Iterator[str]:
    kernel = users_broker.start_kernel(token="alice-token")
    yield kernel
    users_broker.delete_kernel(kernel, token="admin-token")


ENDPOINTS = [
    ("GET", "/api/kernels/{k}"),
    ("DELETE", "/api/kernels/{k}"),
    ("POST", "/api/kernels/{k}/interrupt"),
    ("POST", "/api/kernels/{k}/restart"),
    ("GET", "/api/kernels/{k}/executions"),
    ("POST", "/api/kernels/{k}/execute"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(("token", "status"), [("", 401), ("wrong", 401), ("bob-token", 404)])
def test_others_cannot_touch_a_kernel(users_broker, alice_kernel, method, path, token, status):
    body = {"code": "1"} if path.endswith("execute") else None
    r = users_broker.request(method, path.format(k=alice_kernel), body, token=token)
    assert r.status_code == status
    assert set(r.json()) == {"reason", "message"}
    assert users_broker.request("GET", f"/api/kernels/{alice_kernel}").status_code == 200


def test_owner_and_admin_can_use_a_kernel(users_broker, alice_kernel):
    for token in ("alice-token", "admin-token"):
        events = users_broker.execute(alice_kernel, "print(1)", token=token)
        assert events[-1]["status"] == "ok"


def test_lists_show_only_own_kernels_and_never_403(users_broker, alice_kernel):
    mine = users_broker.request("GET", "/api/kernels", token="alice-token").json()
    theirs = users_broker.request("GET", "/api/kernels", token="bob-token")
    everyone = users_broker.request("GET", "/api/kernels", token="admin-token").json()
    assert [k["id"] for k in mine] == [alice_kernel] and mine[0]["owner"] == "alice"
    assert theirs.status_code == 200 and theirs.json() == []
    assert alice_kernel in [k["id"] for k in everyone]


async def test_websocket_of_another_users_kernel_is_refused(users_broker, alice_kernel):
    with pytest.raises(InvalidStatus) as info:
        await ChannelsConnection.connect(users_broker.url, alice_kernel, "bob-token")
    assert info.value.response.status_code == 404
    async with await ChannelsConnection.connect(users_broker.url, alice_kernel, "alice-token"):
        pass


def test_kernel_username_is_ignored_without_impersonation(users_broker):
    kernel = users_broker.start_kernel(token="bob-token", KERNEL_USERNAME="alice")
    try:
        model = users_broker.request("GET", f"/api/kernels/{kernel}", token="bob-token").json()
        assert model["owner"] == "bob"
        assert users_broker.stdout(kernel, "import os; print(os.environ['KERNEL_USERNAME'])") == (
            "bob\n"
        )
    finally:
        users_broker.delete_kernel(kernel)


def test_impersonating_token_starts_kernels_for_the_named_user(users_broker):
    kernel = users_broker.start_kernel(token="hub-token", KERNEL_USERNAME="alice")
    try:
        mine = users_broker.request("GET", "/api/kernels", token="alice-token").json()
        assert kernel in [k["id"] for k in mine]
    finally:
        users_broker.delete_kernel(kernel)


@pytest.mark.parametrize(
    ("token", "spec", "status"),
    [
        ("bob-token", "only-alice", 403),
        ("bob-token", "eg-no-bob", 403),
        ("alice-token", "only-alice", 201),
    ],
)
def test_kernelspec_user_lists_are_enforced(users_broker, token, spec, status):
    r = users_broker.request("POST", "/api/kernels", {"name": spec}, token=token)
    assert r.status_code == status, r.text
    if status == 201:
        users_broker.delete_kernel(r.json()["id"])
    else:
        assert "not authorized" in r.json()["message"]


@pytest.mark.slow
def test_per_user_and_total_limits_answer_429(users_broker):
    started = []
    try:
        for _ in range(2):
            started.append(users_broker.start_kernel(token="bob-token"))
        r = users_broker.request("POST", "/api/kernels", {}, token="bob-token")
        assert r.status_code == 429 and "bob" in r.json()["message"]
        for _ in range(2):
            started.append(users_broker.start_kernel(token="alice-token"))
        r = users_broker.request("POST", "/api/kernels", {}, token="hub-token")
        assert r.status_code == 429 and "maximum of 4" in r.json()["message"]
    finally:
        for kernel in started:
            users_broker.delete_kernel(kernel)


def test_tokens_never_appear_in_logs(users_broker, alice_kernel):
    users_broker.request("GET", "/api/kernels?token=alice-token")
    users_broker.request("GET", "/api/kernels", token="not-a-real-token-xyz")
    log = users_broker.log()
    for secret in ("alice-token", "admin-token", "not-a-real-token-xyz", "bob-token"):
        assert secret not in log
