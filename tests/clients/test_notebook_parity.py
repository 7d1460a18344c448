"""Notebooks executed through the broker give the outputs a local nbclient run gives."""

from __future__ import annotations

import base64
import copy
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from broker.client import RemoteKernelManager

from ..broker_process import RunningBroker
from .conftest import manager_config, read_notebook

pytestmark = pytest.mark.slow

PARITY_NOTEBOOKS = ["plots", "rich_display", "comms", "stdin", "errors"]


def comparable(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Outputs and widget state, without timing fields and execution metadata."""
    cells = []
    for cell in nb.cells:
        meta = {k: v for k, v in cell.metadata.items() if k != "execution"}
        cells.append({"source": cell.source, "metadata": meta, "outputs": cell.get("outputs")})
    return {"cells": cells, "widgets": nb.metadata.get("widgets")}


async def execute_locally(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return await NotebookClient(nb, allow_errors=True, timeout=60).async_execute()


async def execute_on_broker(
    nb: nbformat.NotebookNode, broker: RunningBroker
) -> nbformat.NotebookNode:
    client = NotebookClient(
        nb,
        allow_errors=True,
        timeout=60,
        kernel_manager_class=RemoteKernelManager,
        config=manager_config(broker),
    )
    return await client.async_execute()


@pytest.mark.parametrize("name", PARITY_NOTEBOOKS)
async def test_outputs_equal_local_execution(name: str, clients_broker: RunningBroker) -> None:
    nb = read_notebook(name)
    local = await execute_locally(copy.deepcopy(nb))
    remote = await execute_on_broker(copy.deepcopy(nb), clients_broker)
    assert comparable(remote) == comparable(local)
    assert any(cell.get("outputs") for cell in remote.cells)


async def test_plots_come_back_as_png(clients_broker: RunningBroker) -> None:
    remote = await execute_on_broker(read_notebook("plots"), clients_broker)
    pngs = [
        out["data"]["image/png"]
        for cell in remote.cells
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(pngs) == 3
    assert all(png.startswith("iVBORw0KGgo") for png in pngs)  # base64 of the PNG signature


async def test_widget_buffers_arrive_intact(clients_broker: RunningBroker) -> None:
    remote = await execute_on_broker(read_notebook("comms"), clients_broker)
    state = remote.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    widget = state["demo-widget"]
    assert widget["state"]["label"] == "y"
    (buffer,) = widget["buffers"]
    assert buffer["path"] == ["value"]
    assert base64.b64decode(buffer["data"]) == b"\x00\xff" * 4096


async def test_input_raises_stdin_not_implemented(clients_broker: RunningBroker) -> None:
    remote = await execute_on_broker(read_notebook("stdin"), clients_broker)
    assert remote.cells[0].outputs[0]["text"] == "StdinNotImplementedError\n"
    assert remote.cells[1].outputs[0]["ename"] == "StdinNotImplementedError"
    assert remote.cells[2].outputs[0]["text"] == "after\n"
