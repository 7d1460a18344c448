"""/api/sessions as in Jupyter Server, and idle culling."""

from __future__ import annotations

import asyncio

import pytest

from broker.client import ChannelsConnection

from .broker_process import RunningBroker, start_broker


def test_session_crud_starts_and_stops_its_kernel(broker: RunningBroker) -> None:
    body = {"path": "a.ipynb", "name": "a", "type": "notebook", "kernel": {"name": "python3"}}
    r = broker.request("POST", "/api/sessions", body)
    assert r.status_code == 201
    session = r.json()
    kernel_id = session["kernel"]["id"]
    assert broker.request("GET", f"/api/kernels/{kernel_id}").status_code == 200
    again = broker.request("POST", "/api/sessions", body)
    assert again.status_code == 200 and again.json()["id"] == session["id"]
    renamed = broker.request("PATCH", f"/api/sessions/{session['id']}", {"path": "b.ipynb"}).json()
    assert renamed["path"] == "b.ipynb" and renamed["kernel"]["id"] == kernel_id
    assert session["id"] in [s["id"] for s in broker.request("GET", "/api/sessions").json()]
    assert broker.request("DELETE", f"/api/sessions/{session['id']}").status_code == 204
    assert broker.request("GET", f"/api/kernels/{kernel_id}").status_code == 404
    assert broker.request("GET", f"/api/sessions/{session['id']}").status_code == 404


def test_session_on_an_existing_kernel(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("POST", "/api/sessions", {"path": "c.ipynb", "kernel": {"id": kernel}})
    assert r.status_code == 201 and r.json()["kernel"]["id"] == kernel


def test_session_bad_input(broker: RunningBroker) -> None:
    for body in ({"path": 1}, {"kernel": "x"}, {"kernel": {"name": 3}}, {"kernel": {"id": "nope"}}):
        r = broker.request("POST", "/api/sessions", body)
        assert r.status_code in (400, 404), body


@pytest.mark.slow
async def test_idle_kernels_are_culled_but_connected_ones_kept(tmp_path, broker_env) -> None:
    b = start_broker(
        tmp_path,
        "--cull-idle-timeout=1",
        "--cull-interval=0.5",
        env=broker_env,
    )
    try:
        idle = b.start_kernel()
        kept = b.start_kernel()
        async with await ChannelsConnection.connect(b.url, kept, b.token):
            async with asyncio.timeout(30):
                while b.request("GET", f"/api/kernels/{idle}").status_code != 404:
                    await asyncio.sleep(0.2)  # polling the public API: no event to await
            assert b.request("GET", f"/api/kernels/{kept}").status_code == 200
        assert "culling kernel" in b.log()
    finally:
        b.stop()
