"""The file API on Bash, Deno and R kernels, from outside: REST, the client library, MCP.

Each kernel works in a directory of the test's own (KERNEL_WORKING_DIR), so a test can
also look at the disk the kernel wrote to, and put links and FIFOs there. The broker
moves files in 1 MiB chunks, so a few megabytes take several calls each way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_types import EmbeddedResource

from broker.client import BrokerREST
from broker.client import files as kfiles

from ..broker_process import RunningBroker, start_broker
from ..mcp.conftest import mcp_session
from ..mcp.test_mcp_http import run, text
from ..test_files import links_out_are_403, raw_request, seen_by_another_client, transfers
from .conftest import ALL, BASH, DENO, Language, R, language_params

pytestmark = [pytest.mark.slow, pytest.mark.languages]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CHUNK = 1024 * 1024
SEVERAL_CHUNKS = os.urandom(3 * CHUNK + 12345) + bytes(range(256)) + b"\x00\r\n\xff"
CSV = b"a,b\n1,2\n3,4\n5,36\n"


@pytest.fixture(scope="module")
def files_broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    """A broker offering every installed kernelspec, moving files in 1 MiB chunks."""
    running = start_broker(
        tmp_path_factory.mktemp("language-files"),
        "--pool-size=0",
        f"--FileLimits.chunk_bytes={CHUNK}",
        env=broker_env,
    )
    yield running
    running.stop()


@pytest.fixture
def kernel(files_broker: RunningBroker, language: Language, workdir: Path) -> Iterator[str]:
    """A fresh kernel of ``language`` working in ``workdir``, shut down afterwards."""
    kernel_id = files_broker.start_kernel(language.kernelspec, KERNEL_WORKING_DIR=str(workdir))
    yield kernel_id
    files_broker.delete_kernel(kernel_id)


def files(kernel_id: str, path: str = "") -> str:
    return f"/api/kernels/{kernel_id}/files/{path}"


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("language", ALL)
def test_uploaded_csv_is_read_by_code_in_the_language(
    files_broker: RunningBroker, kernel: str, language: Language, workdir: Path
) -> None:
    r = files_broker.request("PUT", files(kernel, "data.csv"), data=CSV)
    assert (r.status_code, r.json()["size"], r.json()["created"]) == (201, len(CSV), True)
    assert (workdir / "data.csv").read_bytes() == CSV
    assert files_broker.stdout(kernel, language.sum_csv) == "42\n"


@pytest.mark.parametrize("language", ALL)
def test_binary_file_of_several_chunks_round_trips(
    files_broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    r = files_broker.request("PUT", files(kernel, "in/blob.bin"), data=SEVERAL_CHUNKS)
    assert r.status_code == 201, r.text
    assert (workdir / "in" / "blob.bin").read_bytes() == SEVERAL_CHUNKS
    got = files_broker.request("GET", files(kernel, "in/blob.bin"))
    assert got.status_code == 200
    assert got.headers["Content-Length"] == str(len(SEVERAL_CHUNKS))
    assert got.content == SEVERAL_CHUNKS


@pytest.mark.parametrize("language", ALL)
def test_a_file_the_kernel_wrote_downloads(
    files_broker: RunningBroker, kernel: str, language: Language
) -> None:
    files_broker.execute(kernel, language.write_file)
    r = files_broker.request("GET", files(kernel, "out.txt"))
    assert (r.status_code, r.text) == (200, "from the kernel")


@pytest.mark.parametrize("language", ALL)
def test_replacing_a_file_answers_200_and_empty_files_round_trip(
    files_broker: RunningBroker, kernel: str
) -> None:
    first = files_broker.request("PUT", files(kernel, "f.txt"), data=b"one")
    second = files_broker.request("PUT", files(kernel, "f.txt"), data=b"")
    assert (first.status_code, second.status_code, second.json()["created"]) == (201, 200, False)
    r = files_broker.request("GET", files(kernel, "f.txt"))
    assert (r.status_code, r.content) == (200, b"")


@pytest.mark.parametrize("language", ALL)
def test_unicode_and_quoted_names_round_trip(
    files_broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    name = 'données "q" it\'s $HOME `x` é.txt'
    r = files_broker.request("PUT", files(kernel, name), data=b"ok")
    assert (r.status_code, r.json()["name"]) == (201, name)
    assert (workdir / name).read_bytes() == b"ok"
    assert files_broker.request("GET", files(kernel, name)).content == b"ok"
    names = [e["name"] for e in files_broker.request("GET", files(kernel)).json()["entries"]]
    assert names == [name]


# --- listing and deleting -----------------------------------------------------------


@pytest.mark.parametrize("language", ALL)
def test_listing_gives_names_types_sizes_and_iso_times_in_order(
    files_broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    files_broker.request("PUT", files(kernel, "b.txt"), data=b"12345")
    files_broker.request("PUT", files(kernel, "a/inner.txt"), data=b"1")
    (workdir / "B.txt").write_bytes(b"")
    listing = files_broker.request("GET", files(kernel)).json()
    assert (listing["type"], listing["path"], listing["truncated"]) == ("directory", "", False)
    entries = {e["name"]: e for e in listing["entries"]}
    assert list(entries) == ["B.txt", "a", "b.txt"]  # by code point, as Python sorts
    assert (entries["b.txt"]["type"], entries["b.txt"]["size"]) == ("file", 5)
    assert (entries["a"]["type"], entries["a"]["size"]) == ("directory", None)
    assert all(ISO.match(e["modified"]) for e in listing["entries"])
    sub = files_broker.request("GET", files(kernel, "a/")).json()
    assert [(e["path"], e["size"]) for e in sub["entries"]] == [("a/inner.txt", 1)]


@pytest.mark.parametrize("language", ALL)
def test_delete_removes_a_file_and_refuses_a_full_directory(
    files_broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    files_broker.request("PUT", files(kernel, "full/x"), data=b"x")
    refused = files_broker.request("DELETE", files(kernel, "full"))
    assert refused.status_code == 409 and "not empty" in refused.json()["message"]
    assert files_broker.request("DELETE", files(kernel, "full/x")).status_code == 204
    assert files_broker.request("DELETE", files(kernel, "full")).status_code == 204
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("language", ALL)
def test_an_unknown_path_is_404_naming_it(files_broker: RunningBroker, kernel: str) -> None:
    for method in ("GET", "DELETE"):
        r = files_broker.request(method, files(kernel, "never/there.csv"))
        assert r.status_code == 404, (method, r.text)
        assert "never/there.csv" in r.json()["message"]


# --- paths that try to leave the working directory ----------------------------------


@pytest.mark.parametrize("language", ALL)
def test_paths_that_climb_out_are_400(files_broker: RunningBroker, kernel: str) -> None:
    for path in ("../secret", "%2e%2e/secret", "//etc/passwd"):
        for method, body in [("GET", b""), ("PUT", b"x"), ("DELETE", b"")]:
            status, doc = raw_request(files_broker, method, files(kernel, path), body)
            assert status == 400, (method, path, doc)


@pytest.mark.parametrize("language", ALL)
def test_a_symlink_out_of_the_working_directory_is_403(
    files_broker: RunningBroker, kernel: str, workdir: Path, tmp_path: Path
) -> None:
    links_out_are_403(files_broker, kernel, workdir, tmp_path)


@pytest.mark.parametrize("language", ALL)
def test_a_link_inside_is_followed_and_deleting_it_keeps_its_target(
    files_broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    (workdir / "real").mkdir()
    (workdir / "alias").symlink_to(workdir / "real")
    r = files_broker.request("PUT", files(kernel, "alias/f.txt"), data=b"via link")
    assert r.status_code == 201, r.text
    assert (workdir / "real" / "f.txt").read_bytes() == b"via link"
    assert files_broker.request("DELETE", files(kernel, "alias")).status_code == 204
    assert not (workdir / "alias").is_symlink()
    assert (workdir / "real" / "f.txt").read_bytes() == b"via link"


@pytest.mark.parametrize("language", ALL)
def test_download_of_a_fifo_is_409_and_the_kernel_stays_free(
    files_broker: RunningBroker, kernel: str, language: Language, workdir: Path
) -> None:
    os.mkfifo(workdir / "pipe")
    r = files_broker.request("GET", files(kernel, "pipe"))
    assert r.status_code == 409
    assert "not a regular file" in r.json()["message"]
    assert files_broker.stdout(kernel, language.hello) == "hello 42\n"


# --- the kernel's own session --------------------------------------------------------


@pytest.mark.parametrize("language", ALL)
async def test_other_clients_see_only_busy_and_idle(
    files_broker: RunningBroker, kernel: str, language: Language
) -> None:
    seen = await seen_by_another_client(files_broker, kernel, language.hello)
    assert seen and set(seen) == {("iopub", "status")}


@pytest.mark.parametrize("language", ALL)
def test_transfers_leave_the_users_session_alone(
    files_broker: RunningBroker, kernel: str, language: Language
) -> None:
    files_broker.execute(kernel, language.define)
    transfers(files_broker, kernel)
    assert files_broker.stdout(kernel, language.defined) == "yes\n"
    assert files_broker.stdout(kernel, language.left_alone) == "clean\n"


@pytest.mark.parametrize("language", language_params(DENO, R))
def test_transfers_leave_the_execution_count_alone(
    files_broker: RunningBroker, kernel: str, language: Language
) -> None:
    before = files_broker.execute(kernel, language.hello)[-1]["execution_count"]
    transfers(files_broker, kernel)
    after = files_broker.execute(kernel, language.hello)[-1]["execution_count"]
    assert after == before + 1


@pytest.mark.parametrize("language", language_params(BASH))
def test_bash_transfers_count_as_executions(files_broker: RunningBroker, kernel: str) -> None:
    """bash_kernel publishes nothing for a silent request, so file calls are not silent:
    each one advances the count (docs/files.md says so)."""
    before = files_broker.execute(kernel, "true")[-1]["execution_count"]
    files_broker.request("GET", files(kernel))
    after = files_broker.execute(kernel, "true")[-1]["execution_count"]
    assert after == before + 2


# --- the client library and MCP --------------------------------------------------------


@pytest.mark.parametrize("language", ALL)
async def test_client_library_streams_files_both_ways(
    files_broker: RunningBroker, kernel: str, tmp_path: Path
) -> None:
    rest = BrokerREST(files_broker.url, files_broker.token)
    source, target = tmp_path / "source.bin", tmp_path / "target.bin"
    source.write_bytes(SEVERAL_CHUNKS)
    model = await kfiles.upload_file(rest, kernel, source, "data/big.bin")
    assert (model["path"], model["size"]) == ("data/big.bin", len(SEVERAL_CHUNKS))
    await kfiles.download_file(rest, kernel, "data/big.bin", target)
    assert target.read_bytes() == SEVERAL_CHUNKS
    listing = await kfiles.list_files(rest, kernel, "data")
    assert [e["name"] for e in listing["entries"]] == ["big.bin"]
    await kfiles.delete_file(rest, kernel, "data/big.bin")
    assert (await kfiles.list_files(rest, kernel, "data"))["entries"] == []


@pytest.mark.parametrize("language", ALL)
async def test_mcp_upload_and_download_file(
    files_broker: RunningBroker, kernel: str, language: Language
) -> None:
    headers = {"Authorization": f"Bearer {files_broker.token}"}
    async with mcp_session(f"{files_broker.url}/mcp", headers) as session:
        args = {"kernel_id": kernel, "path": "data.csv", "content": CSV.decode()}
        uploaded = await session.call_tool("upload_file", args)
        assert not uploaded.is_error, uploaded.content
        ran = await run(session, kernel, language.sum_csv)
        assert text(ran).startswith("42")
        got = await session.call_tool("download_file", {"kernel_id": kernel, "path": "data.csv"})
    resource = next(c for c in got.content if isinstance(c, EmbeddedResource))
    assert resource.resource.text == CSV.decode()
