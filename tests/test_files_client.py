"""broker.client.files against a real broker: the functions scripts, llm_agent and the
MCP tools use for the file API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.client import BrokerAPIError, BrokerREST
from broker.client import files as kfiles

from .broker_process import RunningBroker, kernel_in

DATA = bytes(range(256)) * 1000


@pytest.fixture
def kernel(broker: RunningBroker, workdir: Path) -> Iterator[str]:
    """A fresh kernel working in ``workdir``."""
    with kernel_in(broker, workdir) as kernel_id:
        yield kernel_id


@pytest.fixture
def rest(broker: RunningBroker) -> BrokerREST:
    return BrokerREST(broker.url, broker.token)


async def test_upload_and_download_bytes(rest: BrokerREST, kernel: str, workdir: Path) -> None:
    model = await kfiles.upload(rest, kernel, "sub/d.bin", DATA)
    assert (model["path"], model["size"], model["created"]) == ("sub/d.bin", len(DATA), True)
    assert (workdir / "sub" / "d.bin").read_bytes() == DATA
    assert await kfiles.download(rest, kernel, "sub/d.bin") == DATA


async def test_upload_file_and_download_file_stream_from_and_to_disk(
    rest: BrokerREST, kernel: str, tmp_path: Path
) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    model = await kfiles.upload_file(rest, kernel, local)
    assert model["path"] == "local.bin"
    copy = tmp_path / "copy.bin"
    assert await kfiles.download_file(rest, kernel, "local.bin", copy) == local.stat().st_size
    assert copy.read_bytes() == local.read_bytes()


async def test_upload_files_writes_several_in_one_request(
    rest: BrokerREST, kernel: str, workdir: Path
) -> None:
    models = await kfiles.upload_files(rest, kernel, {"a.txt": b"a", 'q"uote.txt': b"q"}, "in")
    assert [m["path"] for m in models] == ["in/a.txt", 'in/q"uote.txt']
    assert (workdir / "in" / "a.txt").read_bytes() == b"a"


async def test_list_and_delete(rest: BrokerREST, kernel: str) -> None:
    await kfiles.upload(rest, kernel, "x.txt", b"x")
    listing = await kfiles.list_files(rest, kernel)
    assert [e["name"] for e in listing["entries"]] == ["x.txt"]
    await kfiles.delete_file(rest, kernel, "x.txt")
    assert (await kfiles.list_files(rest, kernel))["entries"] == []


async def test_errors_are_broker_api_errors_with_the_brokers_message(
    rest: BrokerREST, kernel: str, tmp_path: Path
) -> None:
    with pytest.raises(BrokerAPIError) as missing:
        await kfiles.download(rest, kernel, "nothing.txt")
    assert missing.value.status == 404 and "nothing.txt" in missing.value.message
    local = tmp_path / "never.bin"
    with pytest.raises(BrokerAPIError):
        await kfiles.download_file(rest, kernel, "nothing.txt", local)
    assert not local.exists()  # no half-written file is left behind
    with pytest.raises(BrokerAPIError) as climbing:
        await kfiles.upload(rest, kernel, "../out.txt", b"x")
    assert climbing.value.status == 400


async def test_download_of_a_directory_and_listing_of_a_file_say_which(
    rest: BrokerREST, kernel: str
) -> None:
    await kfiles.upload(rest, kernel, "d/f.txt", b"f")
    with pytest.raises(BrokerAPIError, match="is a directory"):
        await kfiles.download(rest, kernel, "d")
    with pytest.raises(BrokerAPIError, match="is a file"):
        await kfiles.list_files(rest, kernel, "d/f.txt")
