"""upload_file and download_file: a data set in, results out, through the official MCP client."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from mcp_types import EmbeddedResource, ImageContent
from PIL import Image

from ..broker_process import RunningBroker
from .conftest import ALICE, BOB, as_user
from .test_mcp_http import run, text

CSV = "x,y\n1,2\n2,4\n3,6\n"
ANALYSIS = """
import pandas as pd, matplotlib.pyplot as plt
df = pd.read_csv('data/points.csv')
print(df['y'].mean())
df.plot(x='x', y='y'); plt.savefig('out/plot.png'); plt.show()
df.describe().to_csv('out/summary.csv')
"""


async def test_uploaded_csv_is_read_plotted_and_results_downloaded(
    mcp_broker: RunningBroker, kernel_id: str, tmp_path: Path
):
    async with as_user(mcp_broker, ALICE) as alice:
        args = {"kernel_id": kernel_id, "path": "data/points.csv", "content": CSV}
        uploaded = await alice.call_tool("upload_file", args)
        assert not uploaded.is_error, text(uploaded)
        assert uploaded.structured_content["size"] == len(CSV)
        assert (tmp_path / "data" / "points.csv").read_text() == CSV
        (tmp_path / "out").mkdir()
        result = await run(alice, kernel_id, ANALYSIS)
        assert text(result).startswith("4.0")
        assert any(isinstance(c, ImageContent) for c in result.content)
        summary = await alice.call_tool(
            "download_file", {"kernel_id": kernel_id, "path": "out/summary.csv"}
        )
        resource = next(c for c in summary.content if isinstance(c, EmbeddedResource))
        assert resource.resource.text == (tmp_path / "out" / "summary.csv").read_text()
        assert resource.resource.mime_type == "text/csv"
        plot = await alice.call_tool(
            "download_file", {"kernel_id": kernel_id, "path": "out/plot.png"}
        )
        image = next(c for c in plot.content if isinstance(c, ImageContent))
        assert base64.b64decode(image.data) == (tmp_path / "out" / "plot.png").read_bytes()
        with Image.open(io.BytesIO(base64.b64decode(image.data))) as png:
            assert png.format == "PNG"


async def test_binary_upload_and_download_round_trip_as_base64(
    mcp_broker: RunningBroker, kernel_id: str
):
    data = bytes(range(256)) * 10
    encoded = base64.b64encode(data).decode()
    async with as_user(mcp_broker, ALICE) as alice:
        args = {"kernel_id": kernel_id, "path": "blob.bin", "content": encoded}
        uploaded = await alice.call_tool("upload_file", {**args, "encoding": "base64"})
        assert not uploaded.is_error, text(uploaded)
        got = await alice.call_tool("download_file", {"kernel_id": kernel_id, "path": "blob.bin"})
    resource = next(c for c in got.content if isinstance(c, EmbeddedResource))
    assert base64.b64decode(resource.resource.blob) == data


async def test_download_of_a_directory_lists_it(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        await alice.call_tool(
            "upload_file", {"kernel_id": kernel_id, "path": "a.txt", "content": "a"}
        )
        listed = await alice.call_tool("download_file", {"kernel_id": kernel_id, "path": ""})
    names = [e["name"] for e in json.loads(text(listed))["entries"]]
    assert "a.txt" in names


@pytest.mark.parametrize(
    "tool, arguments, complaint",
    [
        ("upload_file", {"path": "../escape.txt", "content": "x"}, "climbs out"),
        ("upload_file", {"path": "/etc/passwd", "content": "x"}, "is absolute"),
        ("upload_file", {"path": "", "content": "x"}, "names no file"),
        ("upload_file", {"path": "b.bin", "content": "%%%", "encoding": "base64"}, "base64"),
        ("upload_file", {"path": "c.txt", "content": "x", "encoding": "rot13"}, "encoding:"),
        ("download_file", {"path": "no/such/file.txt"}, ""),
        ("download_file", {"path": "../../etc/passwd"}, "climbs out"),
    ],
)
async def test_bad_file_requests_are_tool_errors(
    mcp_broker: RunningBroker, kernel_id: str, tool: str, arguments: dict, complaint: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await alice.call_tool(tool, {"kernel_id": kernel_id, **arguments})
    assert result.is_error
    assert complaint in text(result)
    assert mcp_broker.request("GET", "/api/status").status_code == 200


async def test_another_users_kernel_files_are_out_of_reach(
    mcp_broker: RunningBroker, kernel_id: str, tmp_path: Path
):
    (tmp_path / "secret.txt").write_text("alice's")
    async with as_user(mcp_broker, BOB) as bob:
        read = await bob.call_tool("download_file", {"kernel_id": kernel_id, "path": "secret.txt"})
        args = {"kernel_id": kernel_id, "path": "secret.txt", "content": "bob's"}
        written = await bob.call_tool("upload_file", args)
    assert read.is_error and written.is_error and "No kernel" in text(written)
    assert (tmp_path / "secret.txt").read_text() == "alice's"
