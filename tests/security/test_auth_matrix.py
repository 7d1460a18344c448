"""Who may call what: every endpoint of routes() and the websocket, for every kind of caller.

Callers: no token, a wrong token, another user's token, the owner's token and an
admin's token (a users file), each sent in the Authorization header and as
``?token=``. Public probes answer everyone; everything else answers 401 without a
valid token; another user's kernels, executions and sessions are 404 (their
existence is not revealed); owners and admins get the real answer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from broker.client.channels import channels_url
from broker.handlers.base import allowed_methods
from broker.routes import routes

from ..broker_process import RunningBroker, start_broker

pytestmark = pytest.mark.slow  # every route for every caller, on a broker of its own

TOKENS = {
    "none": None,
    "wrong": "wrong-token-0000",
    "other": "bob-token-2222",
    "owner": "alice-token-1111",
    "admin": "admin-token-3333",
}
USERS = {
    "users": [
        {"name": "alice", "token": TOKENS["owner"]},
        {"name": "bob", "token": TOKENS["other"]},
        {"name": "root", "token": TOKENS["admin"], "admin": True},
    ]
}


MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}},
}


@dataclass(frozen=True)
class Row:
    """One endpoint: ``public`` answers all, ``owned`` is alice's, ``any`` any valid token."""

    method: str
    path: str  # alice's {k} kernel, {e} execution, {s} session, {n} snapshot, {f} file;
    # {fresh_*} new ones
    kind: str
    ok: int
    body: Any = None
    slow: bool = False  # restarts or starts a kernel when it succeeds


ROWS = [
    Row("GET", "/api", "public", 200),
    Row("GET", "/healthz", "public", 200),
    Row("GET", "/readyz", "public", 200),
    Row("GET", "/api/status", "any", 200),
    Row("GET", "/api/spec.yaml", "public", 200),
    Row("GET", "/metrics", "any", 200),
    Row("GET", "/api/kernelspecs", "any", 200),
    Row("GET", "/api/kernelspecs/python3", "any", 200),
    Row("GET", "/api/kernelspecs/only-alice", "owned", 200),
    Row("GET", "/kernelspecs/only-alice/logo-64x64.png", "owned", 200),
    Row("GET", "/api/kernels", "any", 200),
    Row("POST", "/api/kernels", "any", 404, {"name": "no-such-spec"}),
    Row("GET", "/api/kernels/{k}", "owned", 200),
    Row("DELETE", "/api/kernels/{fresh_k}", "owned", 204, slow=True),
    Row("POST", "/api/kernels/{k}/interrupt", "owned", 204),
    Row("POST", "/api/kernels/{k}/restart", "owned", 200, slow=True),
    Row("POST", "/api/kernels/{k}/execute", "owned", 200, {"code": "1"}),
    Row("GET", "/api/kernels/{k}/executions", "owned", 200),
    Row("GET", "/api/kernels/{k}/executions/{e}", "owned", 200),
    Row("DELETE", "/api/kernels/{k}/executions/{e}", "owned", 200),
    Row("GET", "/api/sessions", "any", 200),
    Row("POST", "/api/sessions", "any", 404, {"path": "x", "kernel": {"name": "no-such-spec"}}),
    Row("GET", "/api/sessions/{s}", "owned", 200),
    Row("PATCH", "/api/sessions/{s}", "owned", 200, {"name": "renamed"}),
    Row("DELETE", "/api/sessions/{fresh_s}", "owned", 204, slow=True),
    Row("POST", "/api/kernels/{k}/snapshots", "owned", 201),
    Row("POST", "/api/kernels/{k}/restore", "owned", 200, {"snapshot": "{n}"}),
    Row("GET", "/api/snapshots", "any", 200),
    Row("GET", "/api/snapshots/{n}", "owned", 200),
    Row("DELETE", "/api/snapshots/{fresh_n}", "owned", 204),
    Row("GET", "/api/kernels/{k}/files/", "owned", 200),
    Row("POST", "/api/kernels/{k}/files/", "owned", 400, {"not": "multipart"}),
    Row("GET", "/api/kernels/{k}/files/{f}", "owned", 200),
    Row("PUT", "/api/kernels/{k}/files/{new_f}", "owned", 201, {"any": "bytes"}),
    Row("POST", "/api/kernels/{k}/files/{f}", "owned", 400, {"not": "multipart"}),
    Row("DELETE", "/api/kernels/{k}/files/{fresh_f}", "owned", 204),
    Row("POST", "/mcp", "any", 200, MCP_INITIALIZE),
]
WEBSOCKET = Row("GET", "/api/kernels/{k}/channels", "owned", 101)


def expected(row: Row, role: str) -> int:
    if row.kind == "public":
        return row.ok
    if role in ("none", "wrong"):
        return 401
    if row.kind == "owned" and role == "other":
        return 404
    return row.ok


@pytest.fixture(scope="module")
def users_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("authz")
    (tmp / "users.json").write_text(json.dumps(USERS))
    b = start_broker(
        tmp,
        f"--users-file={tmp / 'users.json'}",
        f"--snapshot-dir={tmp / 'snapshots'}",
        token=None,
        env=broker_env,
    )
    b.token = TOKENS["owner"]
    yield b
    b.stop()


@pytest.fixture(scope="module")
def alice(users_broker: RunningBroker, tmp_path_factory) -> dict[str, str]:
    """Alice's kernel, one finished execution of it, a session on it, a snapshot of it and
    a file in its working directory (a directory of its own)."""
    workdir = tmp_path_factory.mktemp("alice-files")
    (workdir / "alice.txt").write_text("alice's")
    kernel = users_broker.start_kernel(KERNEL_WORKING_DIR=str(workdir))
    r = users_broker.request("POST", f"/api/kernels/{kernel}/execute", {"code": "1"})
    execution = r.headers["Location"].rsplit("/", 1)[1]
    r = users_broker.request("POST", "/api/sessions", {"path": "a.ipynb", "kernel": {"id": kernel}})
    return {
        "k": kernel,
        "e": execution,
        "s": r.json()["id"],
        "n": _snapshot(users_broker, kernel),
        "f": "alice.txt",
    }


def _snapshot(broker: RunningBroker, kernel: str) -> str:
    r = broker.request("POST", f"/api/kernels/{kernel}/snapshots")
    assert r.status_code == 201, r.text
    return r.json()["id"]


def fill(broker: RunningBroker, path: str, ids: dict[str, str], role: str) -> str:
    """The concrete path; destructive rows get a resource of alice's made for this call."""
    if "{fresh_k}" in path:
        ids = {**ids, "fresh_k": broker.start_kernel() if role in ("owner", "admin") else ids["k"]}
    if "{fresh_s}" in path:
        fresh = ids["s"]
        if role in ("owner", "admin"):
            fresh = broker.request("POST", "/api/sessions", {"path": f"{role}.ipynb"}).json()["id"]
        ids = {**ids, "fresh_s": fresh}
    if "{new_f}" in path or "{fresh_f}" in path:  # a name to write, a file to delete
        new = fresh = ids["f"]  # others try alice's own file
        if role in ("owner", "admin"):
            new, fresh = (f"{role}-{uuid.uuid4().hex}.txt" for _ in range(2))
            broker.request("PUT", f"/api/kernels/{ids['k']}/files/{fresh}", data=b"x")
        ids = {**ids, "new_f": new, "fresh_f": fresh}
    if "{fresh_n}" in path:
        owner = role in ("owner", "admin")
        ids = {**ids, "fresh_n": _snapshot(broker, ids["k"]) if owner else ids["n"]}
    return path.format(**ids)


def call(
    broker: RunningBroker, method: str, path: str, token: str | None, via: str, body: Any = None
) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token and via == "header" else {}
    params = {"token": token} if token and via == "query" else {}
    data = None if body is None else json.dumps(body)
    if body is not None:
        headers["Content-Type"] = "application/json"
    url = broker.url + path
    return requests.request(method, url, headers=headers, params=params, data=data, timeout=120)


def cases() -> Iterator[Any]:
    """Every row, caller and token placement; a slow success is tried with the header only
    (where the token comes from is decided before any handler runs)."""
    for row in ROWS:
        for role in TOKENS:
            for via in ("header", "query"):
                if not (row.slow and via == "query" and expected(row, role) < 400):
                    yield pytest.param(row, role, via, id=f"{row.method} {row.path}-{role}-{via}")


@pytest.mark.slow
@pytest.mark.parametrize(("row", "role", "via"), cases())
def test_every_endpoint_answers_each_caller(
    users_broker: RunningBroker, alice: dict[str, str], row: Row, role: str, via: str
) -> None:
    path = fill(users_broker, row.path, alice, role)
    body = json.loads(json.dumps(row.body).replace("{n}", alice["n"])) if row.body else None
    r = call(users_broker, row.method, path, TOKENS[role], via, body)
    assert r.status_code == expected(row, role), r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"reason", "message"}


@pytest.mark.parametrize("via", ["header", "query"])
@pytest.mark.parametrize("role", list(TOKENS))
async def test_the_websocket_answers_each_caller(
    users_broker: RunningBroker, alice: dict[str, str], role: str, via: str
) -> None:
    token = TOKENS[role]
    url = channels_url(users_broker.url, alice["k"], "authz")
    if token and via == "query":
        url += f"&token={token}"
    headers = {"Authorization": f"token {token}"} if token and via == "header" else None
    want = expected(WEBSOCKET, role)
    if want == 101:
        async with connect(url, additional_headers=headers) as ws:
            assert ws.response.status_code == 101
        return
    with pytest.raises(InvalidStatus) as info:
        await connect(url, additional_headers=headers)
    assert info.value.response.status_code == want


def test_the_matrix_covers_every_route_and_method() -> None:
    """A new endpoint in routes() fails here until it gets a row above."""
    names = ["k", "e", "s", "n", "f", "new_f", "fresh_k", "fresh_s", "fresh_n", "fresh_f"]
    sample = dict.fromkeys(names, "id")
    rows = [*ROWS, WEBSOCKET]
    for pattern, handler in routes():
        for method in allowed_methods(handler).split(", "):
            assert any(
                r.method == method and re.fullmatch(pattern, r.path.format(**sample)) for r in rows
            ), f"{method} {pattern} ({handler.__name__}) has no row in the auth matrix"
