"""Fixtures: a broker with two users and snapshots on, and MCP sessions to it (official SDK)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from ..broker_process import RunningBroker, start_users_broker

ALICE, BOB = "alice-token", "bob-token"
USERS = {"users": [{"name": "alice", "token": ALICE}, {"name": "bob", "token": BOB}]}


@pytest.fixture(scope="session")
def mcp_broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    """Alice's and Bob's broker (requests default to Alice's token), snapshots on."""
    tmp = tmp_path_factory.mktemp("mcp-broker")
    broker = start_users_broker(
        tmp, USERS, ALICE, f"--snapshot-dir={tmp / 'snapshots'}", env=broker_env
    )
    yield broker
    broker.stop()


@contextlib.asynccontextmanager
async def mcp_session(
    url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session to ``url`` over streamable HTTP."""
    timeout = httpx2.Timeout(30.0, read=180.0)
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def as_user(broker: RunningBroker, token: str) -> contextlib.AbstractAsyncContextManager:
    """A user's MCP session, the token as ``Authorization: Bearer``.

    A context manager, not a fixture: the client's task group must be entered and left in
    the test's own task.
    """
    return mcp_session(f"{broker.url}/mcp", {"Authorization": f"Bearer {token}"})


@pytest.fixture
def kernel_id(mcp_broker: RunningBroker, tmp_path: Path) -> Iterator[str]:
    """A kernel of Alice's (started over REST, working in tmp_path), shut down afterwards."""
    kernel = mcp_broker.start_kernel(KERNEL_WORKING_DIR=str(tmp_path))
    yield kernel
    mcp_broker.delete_kernel(kernel)
