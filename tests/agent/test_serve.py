"""`llm-agent serve`: the chat endpoint's server-sent events, sessions and idle cleanup."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ..broker_process import RunningBroker
from .chat_client import TOKEN, ChatServer, post_chat
from .scripted_llm import ScriptedLLM, Turn, expect_tool_messages, python

pytestmark = pytest.mark.slow  # agents, kernels and the scripted model for every test


async def test_chat_streams_text_tool_calls_outputs_and_answer(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    llm.add(
        Turn(content="Computing.", tool_calls=[python("x = 6 * 7\nprint(x)")]),
        Turn(content="It is 42.", check=expect_tool_messages("42")),
    )
    events = await post_chat(chat.url, {"message": "What is 6*7?"})
    names = [name for name, _ in events]
    assert names[0] == "session" and names[-1] == "done"
    assert [n for n in names if n != "text"][1:-1] == [
        "tool_call",
        "tool_output",
        "tool_result",
        "answer",
    ]
    data = dict(events)
    assert data["tool_call"]["code"] == "x = 6 * 7\nprint(x)"
    assert data["tool_output"] == {
        "call_id": "call_0",
        "stream": "stdout",
        "text": "42\n",
        "mime_types": [],
        "data": {},
        "traceback": "",
    }
    assert data["answer"]["text"] == "It is 42."
    assert "".join(d["text"] for n, d in events if n == "text") == "Computing.It is 42."


async def test_a_session_keeps_its_kernel_between_messages(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    llm.add(
        Turn(tool_calls=[python("x = 5")]),
        Turn(content="Stored."),
        Turn(tool_calls=[python("x + 1")]),
        Turn(content="Six.", check=expect_tool_messages("Out[2]: 6")),
    )
    first = await post_chat(chat.url, {"message": "Store 5"})
    session_id = first[0][1]["session_id"]
    second = await post_chat(chat.url, {"message": "Add one", "session_id": session_id})
    assert second[0][1]["session_id"] == session_id and ("answer", {"text": "Six."}) in second
    assert len(chat.sessions.sessions) == 1


async def test_idle_sessions_are_closed_with_their_kernel(
    chat: ChatServer, llm: ScriptedLLM, broker: RunningBroker
) -> None:
    llm.add(Turn(content="Hi."))
    events = await post_chat(chat.url, {"message": "Hello", "session_id": "idle-one"})
    assert events[-1][0] == "done"
    kernel_id = chat.sessions.sessions["idle-one"].agent.kernel.kernel_id
    assert await chat.sessions.reap_idle(now=0) == []  # not idle yet
    session = chat.sessions.sessions["idle-one"]
    assert await chat.sessions.reap_idle(now=session.last_used + 601) == ["idle-one"]
    assert broker.request("GET", f"/api/kernels/{kernel_id}").status_code == 404


async def test_concurrent_first_messages_of_a_session_start_one_kernel(
    chat: ChatServer, llm: ScriptedLLM
) -> None:
    llm.add(Turn(content="Hi."))
    body = {"message": "Hello", "session_id": "twin"}
    outcomes = await asyncio.gather(
        post_chat(chat.url, body), post_chat(chat.url, body), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, HTTPClientError)]
    assert [e.code for e in errors] == [409] and len(chat.sessions.sessions) == 1


async def test_sessions_beyond_the_limit_are_refused(chat: ChatServer) -> None:
    chat.sessions.max_sessions = 0
    response = await AsyncHTTPClient().fetch(
        chat.url + "/api/chat",
        method="POST",
        body=json.dumps({"message": "Hello"}),
        headers={"Authorization": f"Bearer {TOKEN}"},
        raise_error=False,
    )
    assert response.code == 503
    assert json.loads(response.body)["message"] == "too many chat sessions; try again later"


async def test_wrong_token_is_rejected(chat: ChatServer) -> None:
    with pytest.raises(HTTPClientError) as e:
        await post_chat(chat.url, {"message": "Hello"}, token="wrong")
    assert e.value.code == 401
