"""The file API's limits and owners: 413s, truncated listings, other users' kernels,
a kernel without a file helper, a busy kernel, and a download whose file changes under it.

One broker with a users file, small limits (100 kB uploads, 64 KiB chunks, 5 listing
entries, 3 files per form, 5 s per kernel call) so that each limit is cheap to reach,
and an echo kernel (tests/echo_kernel.py) as a kernel of another language.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .broker_process import RunningBroker, kernel_in, start_users_broker

USERS = {"users": [{"name": "alice", "token": "alice"}, {"name": "bob", "token": "bob"}]}
MAX_UPLOAD = 100_000
CHUNK = 65_536
TIMEOUT = 5  # seconds a kernel has to answer each file call


@pytest.fixture(scope="module")
def limited(tmp_path_factory, broker_env, spec_root) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("files-limits")
    echo_dir = tmp / "jupyter" / "kernels" / "echo"
    echo_dir.mkdir(parents=True)
    script = str(Path(__file__).with_name("echo_kernel.py"))
    spec = {"argv": [sys.executable, script, "-f", "{connection_file}"], "language": "echo"}
    (echo_dir / "kernel.json").write_text(json.dumps({**spec, "display_name": "Echo"}))
    env = {**broker_env, "JUPYTER_PATH": f"{tmp / 'jupyter'}{os.pathsep}{spec_root}"}
    broker = start_users_broker(
        tmp,
        USERS,
        "alice",
        f"--FileLimits.max_upload_bytes={MAX_UPLOAD}",
        f"--FileLimits.chunk_bytes={CHUNK}",
        "--FileLimits.max_list_entries=5",
        "--FileLimits.max_files_per_request=3",
        f"--FileLimits.timeout={TIMEOUT}",
        env=env,
    )
    yield broker
    broker.stop()


@pytest.fixture
def kernel(limited: RunningBroker, workdir: Path) -> Iterator[str]:
    """Alice's kernel, working in ``workdir``."""
    with kernel_in(limited, workdir) as kernel_id:
        yield kernel_id


def files(kernel_id: str, path: str = "") -> str:
    return f"/api/kernels/{kernel_id}/files/{path}"


def assert_too_large(r: requests.Response) -> None:
    assert r.status_code == 413, r.text
    message = r.json()["message"]
    assert str(MAX_UPLOAD) in message and "--FileLimits.max_upload_bytes" in message


def test_upload_at_the_limit_is_written_in_several_chunks(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    data = os.urandom(MAX_UPLOAD)
    assert limited.request("PUT", files(kernel, "max.bin"), data=data).status_code == 201
    assert (workdir / "max.bin").read_bytes() == data
    assert limited.request("GET", files(kernel, "max.bin")).content == data


def test_upload_over_the_limit_is_413_naming_the_setting(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    assert_too_large(limited.request("PUT", files(kernel, "big"), data=b"x" * (MAX_UPLOAD + 1)))
    assert limited.files_left(kernel) == []


def test_chunked_upload_over_the_limit_is_413(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    def body() -> Iterator[bytes]:  # no length announced: requests sends it chunked
        for _ in range(4):
            yield b"x" * 40_000

    assert_too_large(limited.request("PUT", files(kernel, "big"), data=body()))
    assert limited.files_left(kernel) == []


def test_multipart_over_the_limit_is_413(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    parts = [("f", ("a.bin", b"a" * 60_000)), ("f", ("b.bin", b"b" * 60_000))]
    assert_too_large(limited.request("POST", files(kernel), files=parts))
    assert limited.files_left(kernel) == []


def test_more_files_than_allowed_is_400_naming_the_setting(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    parts = [("f", (f"{n}.txt", b"x")) for n in range(4)]
    r = limited.request("POST", files(kernel), files=parts)
    assert r.status_code == 400
    assert "--FileLimits.max_files_per_request" in r.json()["message"]
    assert limited.files_left(kernel) == []


def test_listing_stops_at_max_list_entries(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    for n in range(7):
        (workdir / f"f{n}").write_text("x")
    listing = limited.request("GET", files(kernel)).json()
    assert [e["name"] for e in listing["entries"]] == ["f0", "f1", "f2", "f3", "f4"]
    assert listing["truncated"] is True


def test_another_users_kernel_is_404_and_untouched(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    (workdir / "mine.txt").write_text("alice's")
    for method, path, kw in [
        ("GET", "mine.txt", {}),
        ("GET", "", {}),
        ("PUT", "mine.txt", {"data": b"bob's"}),
        ("DELETE", "mine.txt", {}),
        ("POST", "", {"files": [("f", ("mine.txt", b"bob's"))]}),
    ]:
        r = limited.request(method, files(kernel, path), token="bob", **kw)
        assert r.status_code == 404, (method, path)
        assert kernel in r.json()["message"]
    assert limited.files_left(kernel) == ["mine.txt"]
    assert (workdir / "mine.txt").read_text() == "alice's"


def test_a_kernel_without_a_file_helper_is_501_naming_its_language(
    limited: RunningBroker,
) -> None:
    kernel_id = limited.start_kernel("echo")
    try:
        for method, kw in [("GET", {}), ("PUT", {"data": b"x"}), ("DELETE", {})]:
            r = limited.request(method, files(kernel_id, "f.txt"), **kw)
            assert r.status_code == 501, (method, r.text)
            assert "echo" in r.json()["message"] and "python" in r.json()["message"]
    finally:
        limited.delete_kernel(kernel_id)


def test_a_file_changed_during_its_download_is_cut_short(
    limited: RunningBroker, kernel: str, workdir: Path
) -> None:
    # 30 MB in 64 KiB chunks: far more than the sockets between broker and client hold,
    # so the broker is still reading chunks from the kernel when the file changes.
    (workdir / "moving.bin").write_bytes(os.urandom(30 * 1024 * 1024))
    r = limited.request("GET", files(kernel, "moving.bin"), stream=True)
    assert r.status_code == 200
    first = r.raw.read(CHUNK)
    assert len(first) == CHUNK
    limited.execute(kernel, "open('moving.bin', 'ab').write(b'more')")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        for _ in r.iter_content(1024 * 1024):
            pass
    r.close()
    assert "download cut short" in limited.log() and "changed while it was downloaded" in (
        limited.log()
    )


def test_a_busy_kernel_is_504_naming_the_setting_and_leaves_no_upload_behind(
    limited: RunningBroker, kernel: str
) -> None:
    code = f"import time; time.sleep({TIMEOUT + 2})"
    run = limited.request(
        "POST", f"/api/kernels/{kernel}/execute", {"code": code, "background": True}
    )
    assert run.status_code == 202
    r = limited.request("PUT", files(kernel, "late.txt"), data=b"x")
    assert r.status_code == 504
    assert f"{TIMEOUT} s (--FileLimits.timeout)" in r.json()["message"]
    # Once the sleep ends, the kernel still runs the upload's first call (it makes the
    # temporary file), then the clean-up the broker queued behind it.
    assert limited.files_left(kernel) == []
