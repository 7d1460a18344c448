"""The API the chat page uses, probed from outside over HTTP: sessions, files in and out of
the session's kernel, interrupt, the notebook, status, and the page itself."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import nbformat
import pytest
from tornado import httpserver, netutil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from llm_agent import health
from llm_agent.llm import ChatModel
from llm_agent.server import make_app
from llm_agent.sessions import ChatSessions

from ..broker_process import RunningBroker
from .chat_client import AUTH, MAX_UPLOAD, ChatServer, message_of, post_chat
from .scripted_llm import ScriptedLLM, Turn, python, tool_messages

pytestmark = pytest.mark.slow  # a kernel per session


async def started(chat: ChatServer, session_id: str = "s1") -> None:
    response = await chat.call("PUT", f"/api/chat/{session_id}")
    assert response.code == 201, response.body


async def test_put_starts_a_session_and_get_lists_it_named_after_its_first_message(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    first = await chat.call("PUT", "/api/chat/s1")
    again = await chat.call("PUT", "/api/chat/s1")
    assert (first.code, again.code) == (201, 200)
    model = json.loads(first.body)
    assert {k: model[k] for k in ("id", "title", "busy", "language")} == {
        "id": "s1",
        "title": "",
        "busy": False,
        "language": "python",
    }
    llm.add(Turn(content="Hi."))
    await post_chat(chat.url, {"message": "  Which  city\nis largest?", "session_id": "s1"})
    listed = json.loads((await chat.call("GET", "/api/chat")).body)["sessions"]
    assert [(s["id"], s["title"]) for s in listed] == [("s1", "Which city is largest?")]
    described = json.loads((await chat.call("GET", "/api/chat/s1")).body)
    assert described == listed[0] and described["created"] == model["created"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/chat/nope"),
        ("POST", "/api/chat/nope/interrupt"),
        ("GET", "/api/chat/nope/notebook"),
        ("GET", "/api/chat/nope/files/"),
        ("GET", "/api/chat/nope/files/data.csv"),
        ("PUT", "/api/chat/nope/files/data.csv"),
    ],
)
async def test_a_session_that_does_not_exist_is_a_404_saying_to_start_one(
    chat: ChatServer, method: str, path: str
) -> None:
    response = await chat.call(method, path, b"x" if method == "PUT" else None)
    assert response.code == 404
    assert message_of(response).endswith("start a new one")


async def test_a_session_id_that_is_not_a_plain_word_is_refused(chat: ChatServer) -> None:
    response = await chat.call(
        "POST", "/api/chat", json.dumps({"message": "Hi", "session_id": "a/b"})
    )
    assert response.code == 400 and "session_id" in message_of(response)


async def test_an_upload_streams_into_the_kernel_and_the_model_hears_of_it(
    chat: ChatServer, llm: ScriptedLLM, workdir: Path
) -> None:
    await started(chat)
    data = os.urandom(MAX_UPLOAD)  # the largest the server takes, sent in pieces

    async def produce(write) -> None:
        for start in range(0, len(data), 100_000):
            await write(data[start : start + 100_000])

    request = HTTPRequest(
        chat.url + "/api/chat/s1/files/in/data.bin",
        method="PUT",
        headers={**AUTH, "Content-Length": str(len(data))},
        body_producer=produce,
    )
    response = await AsyncHTTPClient().fetch(request)
    model = json.loads(response.body)
    assert response.code == 201 and (model["path"], model["size"]) == ("in/data.bin", len(data))
    assert (workdir / "in" / "data.bin").read_bytes() == data

    def told(body: dict) -> None:
        assert f"in/data.bin ({len(data)} bytes)" in body["messages"][-1]["content"]

    llm.add(Turn(content="Got it.", check=told))
    await post_chat(chat.url, {"message": "What did I send?", "session_id": "s1"})
    notebook = nbformat.reads((await chat.call("GET", "/api/chat/s1/notebook")).body.decode(), 4)
    upload = [c for c in notebook.cells if c.metadata.get("llm_agent", {}).get("role") == "upload"]
    assert len(upload) == 1 and "`in/data.bin`" in upload[0].source


async def raw_put(chat: ChatServer, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    """Send only a PUT's headers, no body; the status and JSON of the answer to them."""
    host, port = chat.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in {**AUTH, **headers}.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = json.loads(await reader.readexactly(length))
    writer.close()
    return int(head.split()[1]), body


async def test_an_upload_over_the_limit_is_refused_before_its_body_is_sent(
    chat: ChatServer, workdir: Path
) -> None:
    await started(chat)
    status, body = await raw_put(
        chat, "/api/chat/s1/files/big.bin", {"Content-Length": str(MAX_UPLOAD + 1)}
    )
    assert status == 413
    assert body["message"] == (
        f"the file has {MAX_UPLOAD + 1} bytes, over this server's limit of {MAX_UPLOAD} "
        "(llm-agent serve --max-upload-bytes)"
    )
    assert not (workdir / "big.bin").exists()


async def test_an_upload_without_its_size_is_refused_with_411(chat: ChatServer) -> None:
    await started(chat)
    status, body = await raw_put(
        chat, "/api/chat/s1/files/data.csv", {"Transfer-Encoding": "chunked"}
    )
    assert status == 411 and body["message"] == "send the file's size as Content-Length"


async def test_an_upload_outside_the_working_directory_is_refused_with_the_brokers_reason(
    chat: ChatServer, workdir: Path
) -> None:
    await started(chat)
    response = await chat.call("PUT", "/api/chat/s1/files/..%2Fescaped.txt", b"x")
    assert response.code == 400, response.body
    assert message_of(response).startswith("cannot upload ../escaped.txt: ")
    assert not (workdir.parent / "escaped.txt").exists()


async def test_files_in_the_working_directory_are_listed_and_downloaded_as_attachments(
    chat: ChatServer, workdir: Path
) -> None:
    await started(chat)
    (workdir / "résumé 1.txt").write_text("written by the code")  # as code in the kernel would
    (workdir / "plots").mkdir()
    listing = json.loads((await chat.call("GET", "/api/chat/s1/files/")).body)
    entries = {e["name"]: (e["type"], e["size"]) for e in listing["entries"]}
    assert entries == {"plots": ("directory", None), "résumé 1.txt": ("file", 19)}
    response = await chat.call("GET", "/api/chat/s1/files/r%C3%A9sum%C3%A9%201.txt")
    assert response.body == b"written by the code"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt"
    )
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Security-Policy"] == "sandbox"


async def test_a_file_that_is_not_there_is_a_404_naming_it(chat: ChatServer) -> None:
    await started(chat)
    response = await chat.call("GET", "/api/chat/s1/files/missing.csv")
    assert response.code == 404
    assert message_of(response).startswith("cannot download missing.csv: ")


SLEEPING = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"


async def test_interrupt_stops_the_running_code_and_the_model_is_told(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    def told(body: dict) -> None:
        assert "KeyboardInterrupt" in tool_messages(body)[0]

    llm.add(Turn(tool_calls=[python(SLEEPING)]), Turn(content="Stopped.", check=told))
    sleeping = asyncio.Event()

    def on_event(name: str, data: dict) -> None:
        if name == "tool_output" and data["text"] == "sleeping\n":
            sleeping.set()

    body = {"message": "Sleep", "session_id": "s1"}
    asking = asyncio.ensure_future(post_chat(chat.url, body, on_event=on_event))
    await asyncio.wait_for(sleeping.wait(), 60)
    response = await chat.call("POST", "/api/chat/s1/interrupt")
    assert response.code == 204
    events = dict(await asking)
    assert events["tool_result"]["ok"] is False
    assert events["answer"]["text"] == "Stopped."


async def test_the_notebook_is_an_attachment_named_after_the_conversation(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    llm.add(Turn(tool_calls=[python("print(1)")]), Turn(content="One."))
    await post_chat(chat.url, {"message": "Print one", "session_id": "s1"})
    response = await chat.call("GET", "/api/chat/s1/notebook")
    assert response.headers["Content-Type"] == "application/x-ipynb+json"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''Print%20one.ipynb"
    )
    notebook = nbformat.reads(response.body.decode(), 4)
    nbformat.validate(notebook)
    roles = [c.metadata.get("llm_agent", {}).get("role", c.cell_type) for c in notebook.cells]
    assert roles == ["user", "code", "assistant"]


async def test_result_events_carry_the_image_and_error_events_the_traceback(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n1 / 0"
    llm.add(Turn(tool_calls=[python(code)]), Turn(content="Plotted, then failed."))
    events = await post_chat(chat.url, {"message": "Plot", "session_id": "s1"})
    outputs = [data for name, data in events if name == "tool_output"]
    result, error = outputs
    assert result["stream"] == "result" and result["data"]["image/png"].startswith("iVBOR")
    assert result["data"]["text/plain"].startswith("<Figure size")
    assert error["stream"] == "error" and error["text"] == "ZeroDivisionError: division by zero"
    assert "Traceback (most recent call last)" in error["traceback"]
    assert "\x1b[" not in error["traceback"]  # plain text, colours removed


async def test_status_says_the_broker_and_the_model_server_answer(chat: ChatServer) -> None:
    status = json.loads((await chat.call("GET", "/api/status")).body)
    assert status == {
        "broker": {"ok": True, "message": ""},
        "model": {"ok": True, "message": ""},
        "max_upload_bytes": MAX_UPLOAD,
    }


async def test_status_names_a_broker_and_a_model_server_that_are_down() -> None:
    model = ChatModel("m", base_url="http://127.0.0.1:1/v1", api_key="k")
    try:
        status = await health.status("http://127.0.0.1:1", "t", model)
    finally:
        await model.close()
    assert status["broker"]["ok"] is False and status["model"]["ok"] is False
    assert status["broker"]["message"].startswith(
        "cannot reach the broker at http://127.0.0.1:1: connection refused"
    )
    assert status["model"]["message"].startswith(
        "cannot reach the model server at http://127.0.0.1:1/v1"
    )


async def test_status_names_a_broker_that_refuses_the_token(broker: RunningBroker) -> None:
    assert (await health.broker_problem(broker.url, "wrong")).startswith(
        f"the broker at {broker.url} refused the token"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/status"),
        ("GET", "/api/chat"),
        ("PUT", "/api/chat/s1"),
        ("GET", "/api/chat/s1/files/"),
        ("PUT", "/api/chat/s1/files/a.txt"),
        ("POST", "/api/chat/s1/interrupt"),
    ],
)
async def test_a_wrong_token_is_a_401_on_every_endpoint(
    chat: ChatServer, method: str, path: str
) -> None:
    wrong = {"Authorization": "Bearer wrong"}
    response = await chat.call(method, path, b"x" if method == "PUT" else None, headers=wrong)
    assert response.code == 401 and "token" in message_of(response)
    assert chat.sessions.sessions == {}


async def test_the_page_is_served_without_a_token_under_a_strict_policy(chat: ChatServer) -> None:
    page = await chat.call("GET", "/", headers={})
    assert page.code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'role="log"' in page.body
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    script = await chat.call("GET", "/static/app.js", headers={})
    assert script.code == 200 and "javascript" in script.headers["Content-Type"]
    assert script.headers["Content-Security-Policy"] == policy
    for outside in ("/static/../server.py", "/static/%2e%2e/server.py"):
        assert (await chat.call("GET", outside, headers={})).code in (403, 404)


@pytest.fixture
async def open_server() -> AsyncIterator[str]:
    """An application without a token (``--no-auth``); no kernel is ever started."""

    async def no_agent():
        raise AssertionError("no session may start")

    sessions = ChatSessions(no_agent, idle_timeout=600)
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(make_app(sessions, None))
    server.add_sockets(sockets)
    yield f"127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


async def test_without_a_token_requests_from_another_origin_are_refused(open_server: str) -> None:
    async def fetch(origin: str):
        return await AsyncHTTPClient().fetch(
            f"http://{open_server}/api/chat",
            headers={"Origin": origin},
            raise_error=False,
        )

    refused = await fetch("http://evil.example")
    assert refused.code == 403
    assert json.loads(refused.body)["message"] == "cross-origin requests are refused"
    assert (await fetch(f"http://{open_server}")).code == 200
