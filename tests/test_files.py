"""The file API from outside: upload, download, list and delete in a real kernel.

Each kernel gets a working directory of its own (KERNEL_WORKING_DIR), so a test can
also look at the disk the kernel wrote to. Requests go out with ``requests``; the
traversal tests that a client library would normalise use ``http.client``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from broker.client import ChannelsConnection

from .broker_process import RunningBroker, kernel_in

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
BINARY = bytes(range(256)) * 300 + b"\x00\r\n\xff"


@pytest.fixture
def kernel(broker: RunningBroker, workdir: Path) -> Iterator[str]:
    """A fresh kernel working in ``workdir``."""
    with kernel_in(broker, workdir) as kernel_id:
        yield kernel_id


def files(kernel_id: str, path: str = "") -> str:
    return f"/api/kernels/{kernel_id}/files/{path}"


def raw_request(broker: RunningBroker, method: str, path: str, body: bytes = b"") -> tuple:
    """A request whose path goes out exactly as written (no dot-segment removal)."""
    parts = urlsplit(broker.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=broker.headers())
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# --- round trips ------------------------------------------------------------------


def test_put_then_get_returns_the_same_bytes(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("PUT", files(kernel, "blob.bin"), data=BINARY)
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(BINARY)
    got = broker.request("GET", files(kernel, "blob.bin"))
    assert got.status_code == 200
    assert got.content == BINARY
    assert got.headers["Content-Length"] == str(len(BINARY))


def test_download_content_type_comes_from_the_name(broker: RunningBroker, kernel: str) -> None:
    for name, expected in [
        ("t.csv", "text/csv"),
        ("p.png", "image/png"),
        ("d.json", "application/json"),
        ("noext", "application/octet-stream"),
    ]:
        broker.request("PUT", files(kernel, name), data=b"x")
        r = broker.request("GET", files(kernel, name))
        assert r.headers["Content-Type"] == expected
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_upload_lands_in_the_kernels_working_directory(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    broker.request("PUT", files(kernel, "data.csv"), data=b"a,b\n1,2\n")
    assert (workdir / "data.csv").read_bytes() == b"a,b\n1,2\n"
    code = "import pandas as pd; print(pd.read_csv('data.csv')['b'].sum())"
    assert broker.stdout(kernel, code) == "2\n"


def test_a_file_the_kernel_wrote_downloads(broker: RunningBroker, kernel: str) -> None:
    broker.execute(kernel, "open('out.txt', 'w').write('from the kernel')")
    assert broker.request("GET", files(kernel, "out.txt")).text == "from the kernel"


def test_put_replacing_a_file_answers_200(broker: RunningBroker, kernel: str) -> None:
    first = broker.request("PUT", files(kernel, "f.txt"), data=b"one")
    second = broker.request("PUT", files(kernel, "f.txt"), data=b"two!")
    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (second.status_code, second.json()["created"]) == (200, False)
    assert broker.request("GET", files(kernel, "f.txt")).content == b"two!"


def test_put_creates_missing_directories(broker: RunningBroker, kernel: str, workdir: Path) -> None:
    r = broker.request("PUT", files(kernel, "a/b/c.txt"), data=b"deep")
    assert r.status_code == 201
    assert r.json()["path"] == "a/b/c.txt"
    assert r.headers["Location"] == files(kernel, "a/b/c.txt")
    assert (workdir / "a" / "b" / "c.txt").read_bytes() == b"deep"


def test_empty_file_round_trips(broker: RunningBroker, kernel: str) -> None:
    assert broker.request("PUT", files(kernel, "empty"), data=b"").status_code == 201
    r = broker.request("GET", files(kernel, "empty"))
    assert (r.status_code, r.content) == (200, b"")


def test_unicode_names_round_trip(broker: RunningBroker, kernel: str, workdir: Path) -> None:
    broker.request("PUT", files(kernel, "données é.txt"), data=b"ok")
    assert (workdir / "données é.txt").read_bytes() == b"ok"
    r = broker.request("GET", files(kernel, "données é.txt"))
    assert "filename*=UTF-8''donn%C3%A9es%20%C3%A9.txt" in r.headers["Content-Disposition"]


def test_multipart_upload_writes_every_file(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    parts = [("file", ("a.txt", b"alpha")), ("file", ("b.bin", BINARY)), ("x", ("c", b""))]
    r = broker.request("POST", files(kernel), files=parts)
    assert r.status_code == 201, r.text
    assert [f["path"] for f in r.json()["files"]] == ["a.txt", "b.bin", "c"]
    assert (workdir / "b.bin").read_bytes() == BINARY
    assert (workdir / "a.txt").read_bytes() == b"alpha"


def test_multipart_upload_into_a_directory(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    r = broker.request("POST", files(kernel, "inbox"), files=[("f", ("m.txt", b"m"))])
    assert r.status_code == 201, r.text
    assert (workdir / "inbox" / "m.txt").read_bytes() == b"m"


def test_multipart_part_without_filename_is_400_and_writes_nothing(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    r = broker.request(
        "POST", files(kernel), files=[("f", ("ok.txt", b"1"))], data={"field": "value"}
    )
    assert r.status_code == 400
    assert "no filename" in r.json()["message"]
    assert broker.files_left(kernel) == []


def test_post_that_is_not_multipart_is_400(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("POST", files(kernel), data=b"raw bytes")
    assert r.status_code == 400
    assert "multipart/form-data" in r.json()["message"]


def test_truncated_multipart_is_400_and_writes_nothing(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="t.txt"\r\n\r\nhalf'
    headers = {**broker.headers(), "Content-Type": "multipart/form-data; boundary=xyz"}
    r = broker.session.post(broker.url + files(kernel), data=body, headers=headers)
    assert r.status_code == 400
    assert "closing boundary" in r.json()["message"]
    assert broker.files_left(kernel) == []  # not even the temporary file


# --- listing and deleting ---------------------------------------------------------


def test_listing_gives_names_types_sizes_and_iso_times(broker: RunningBroker, kernel: str) -> None:
    broker.request("PUT", files(kernel, "b.txt"), data=b"12345")
    broker.request("PUT", files(kernel, "a/inner.txt"), data=b"1")
    listing = broker.request("GET", files(kernel)).json()
    assert (listing["type"], listing["path"], listing["truncated"]) == ("directory", "", False)
    entries = {e["name"]: e for e in listing["entries"]}
    assert list(entries) == ["a", "b.txt"]
    assert (entries["b.txt"]["type"], entries["b.txt"]["size"]) == ("file", 5)
    assert (entries["a"]["type"], entries["a"]["size"]) == ("directory", None)
    assert all(ISO.match(e["modified"]) for e in listing["entries"])


def test_listing_a_subdirectory(broker: RunningBroker, kernel: str) -> None:
    broker.request("PUT", files(kernel, "sub/x.txt"), data=b"x")
    for path in ("sub", "sub/"):
        listing = broker.request("GET", files(kernel, path)).json()
        assert [e["path"] for e in listing["entries"]] == ["sub/x.txt"]


def test_delete_removes_a_file(broker: RunningBroker, kernel: str, workdir: Path) -> None:
    broker.request("PUT", files(kernel, "gone.txt"), data=b"x")
    assert broker.request("DELETE", files(kernel, "gone.txt")).status_code == 204
    assert not (workdir / "gone.txt").exists()
    missing = broker.request("GET", files(kernel, "gone.txt"))
    assert missing.status_code == 404
    assert "gone.txt" in missing.json()["message"]


def test_delete_of_a_non_empty_directory_is_409(broker: RunningBroker, kernel: str) -> None:
    broker.request("PUT", files(kernel, "full/x"), data=b"x")
    r = broker.request("DELETE", files(kernel, "full"))
    assert r.status_code == 409
    assert "not empty" in r.json()["message"]
    broker.request("DELETE", files(kernel, "full/x"))
    assert broker.request("DELETE", files(kernel, "full")).status_code == 204


def test_delete_of_a_missing_file_is_404(broker: RunningBroker, kernel: str) -> None:
    assert broker.request("DELETE", files(kernel, "never")).status_code == 404


def test_delete_of_a_link_leaves_its_target(
    broker: RunningBroker, kernel: str, workdir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    (workdir / "link").symlink_to(target)
    assert broker.request("DELETE", files(kernel, "link")).status_code == 204
    assert not (workdir / "link").is_symlink()
    assert target.read_text() == "keep me"


# --- paths that try to leave the working directory --------------------------------


@pytest.mark.parametrize(
    "path",
    ["../secret", "a/../../secret", "%2e%2e/secret", "%2E%2E%2Fsecret", "//etc/passwd", "%2Fetc"],
)
def test_paths_out_of_the_working_directory_are_400(
    broker: RunningBroker, kernel: str, path: str
) -> None:
    for method, body in [("GET", b""), ("PUT", b"x"), ("DELETE", b"")]:
        status, doc = raw_request(broker, method, files(kernel, path), body)
        assert status == 400, (method, path, doc)
        assert "working directory" in doc["message"] or "absolute" in doc["message"]


def links_out_are_403(broker: RunningBroker, kernel: str, workdir: Path, tmp_path: Path) -> None:
    """Every operation through a link out of the working directory (also one that does not
    lead anywhere yet) is 403 and touches nothing out there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workdir / "out").symlink_to(outside)
    (workdir / "dangling").symlink_to(outside / "not-yet")
    for method, path, body in [
        ("GET", "out/secret.txt", None),
        ("GET", "out", None),
        ("PUT", "out/new.txt", b"x"),
        ("PUT", "dangling/new.txt", b"x"),
        ("DELETE", "out/secret.txt", None),
    ]:
        r = broker.request(method, files(kernel, path), data=body)
        assert r.status_code == 403, (method, path, r.text)
        assert "symbolic link" in r.json()["message"]
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_symlink_out_of_the_working_directory_is_403(
    broker: RunningBroker, kernel: str, workdir: Path, tmp_path: Path
) -> None:
    links_out_are_403(broker, kernel, workdir, tmp_path)


def test_a_symlink_inside_the_working_directory_is_followed(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    (workdir / "real").mkdir()
    (workdir / "alias").symlink_to(workdir / "real")
    broker.request("PUT", files(kernel, "alias/f.txt"), data=b"via link")
    assert (workdir / "real" / "f.txt").read_bytes() == b"via link"


def test_download_of_a_fifo_is_409_and_the_kernel_stays_free(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    os.mkfifo(workdir / "pipe")
    r = broker.request("GET", files(kernel, "pipe"))
    assert r.status_code == 409
    assert "not a regular file" in r.json()["message"]
    assert broker.stdout(kernel, "print('free')") == "free\n"


def test_put_on_a_directory_is_409(broker: RunningBroker, kernel: str, workdir: Path) -> None:
    (workdir / "d").mkdir()
    r = broker.request("PUT", files(kernel, "d"), data=b"x")
    assert r.status_code == 409
    assert "directory" in r.json()["message"]


def test_put_without_a_name_is_405(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("PUT", files(kernel), data=b"x")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"


# --- who may, and which kernel ------------------------------------------------------


def test_unknown_kernel_is_404(broker: RunningBroker) -> None:
    for method, body in [("GET", None), ("PUT", b"x"), ("DELETE", None)]:
        r = broker.request(method, files("no-such-kernel", "f.txt"), data=body)
        assert r.status_code == 404, method
        assert "no-such-kernel" in r.json()["message"]
    r = broker.request("POST", files("no-such-kernel"), files=[("f", ("a", b"1"))])
    assert r.status_code == 404


def test_a_client_that_leaves_mid_upload_leaves_no_file(broker: RunningBroker, kernel: str) -> None:
    parts = urlsplit(broker.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            f"PUT {files(kernel, 'half.bin')} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: token {broker.token}\r\nContent-Length: 10000000\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * 300_000)
    # The broker reads what the client sent before it sees the close, while it answers
    # other requests: nothing says from outside when the clean-up is queued, so ask again
    # (each answer is a real look at the kernel's disk) until it is done or 30 s passed.
    deadline = time.monotonic() + 30
    while (left := broker.files_left(kernel)) and time.monotonic() < deadline:
        pass
    assert left == []


def test_upload_without_a_token_is_401_and_answered(broker: RunningBroker, kernel: str) -> None:
    r = broker.session.put(broker.url + files(kernel, "f.txt"), data=b"x" * 1_000_000)
    assert r.status_code == 401
    assert "token" in r.json()["message"]
    assert broker.request("GET", files(kernel, "f.txt")).status_code == 404


# --- the kernel's own state -------------------------------------------------------


def test_transfers_leave_history_and_execution_count_alone(
    broker: RunningBroker, kernel: str
) -> None:
    before = broker.execute(kernel, "len(In)")
    broker.request("PUT", files(kernel, "h.bin"), data=BINARY)
    broker.request("GET", files(kernel, "h.bin"))
    broker.request("GET", files(kernel))
    broker.request("DELETE", files(kernel, "h.bin"))
    after = broker.execute(kernel, "len(In)")
    assert after[-1]["execution_count"] == before[-1]["execution_count"] + 1
    result = next(e for e in after if e["type"] == "execute_result")
    assert result["data"]["text/plain"] == str(before[-1]["execution_count"] + 2)


def test_a_transfer_waits_for_the_code_the_kernel_is_running(
    broker: RunningBroker, kernel: str, workdir: Path
) -> None:
    code = "import time; time.sleep(1); open('order.txt', 'w').write('code')"
    run = broker.request(
        "POST", f"/api/kernels/{kernel}/execute", {"code": code, "background": True}
    )
    assert run.status_code == 202
    put = broker.request("PUT", files(kernel, "order.txt"), data=b"upload")
    assert (put.status_code, put.json()["created"]) == (200, False)  # the code wrote it first
    assert (workdir / "order.txt").read_bytes() == b"upload"


def transfers(broker: RunningBroker, kernel_id: str) -> None:
    """Each kind of call once: upload, download, listing, delete."""
    assert broker.request("PUT", files(kernel_id, "t.bin"), data=BINARY).status_code == 201
    assert broker.request("GET", files(kernel_id, "t.bin")).content == BINARY
    assert broker.request("GET", files(kernel_id)).status_code == 200
    assert broker.request("DELETE", files(kernel_id, "t.bin")).status_code == 204


async def seen_by_another_client(broker: RunningBroker, kernel: str, code: str) -> list[tuple]:
    """(channel, msg_type) of what a websocket client gets while files move, until the
    first message of ``code`` it sends afterwards."""
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        await asyncio.to_thread(transfers, broker, kernel)
        marker = await conn.request("shell", "execute_request", {"code": code})
        seen = []
        while True:
            msg = await conn.recv(timeout=30)
            if msg.parent_msg_id == marker.msg_id:
                return seen
            seen.append((msg.channel, msg.msg_type))


async def test_other_clients_see_only_busy_and_idle(broker: RunningBroker, kernel: str) -> None:
    seen = await seen_by_another_client(broker, kernel, "'marker'")
    assert seen and set(seen) == {("iopub", "status")}
