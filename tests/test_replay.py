"""The session log behind reconnects, without sockets: bounds, resume points, notices."""

from __future__ import annotations

from broker.replay import SessionLog
from broker.wire import Message, make_message, split_stream


def printed(text: str) -> Message:
    return make_message("iopub", "stream", {"name": "stdout", "text": text}, session="k")


def log_of(*messages: Message, max_bytes: int = 10**9, max_messages: int = 100) -> SessionLog:
    log = SessionLog(max_bytes, max_messages)
    for msg in messages:
        log.append(msg, msg.size)
    return log


def test_the_oldest_messages_go_past_the_bounds() -> None:
    msgs = [printed(str(i)) for i in range(5)]
    log = log_of(*msgs, max_messages=3)
    assert len(log) == 3 and log.nbytes == sum(m.size for m in msgs[2:])


def test_resume_after_a_message_gives_what_followed_it() -> None:
    msgs = [printed(str(i)) for i in range(4)]
    assert log_of(*msgs).after(msgs[1].msg_id, "b") == msgs[2:]
    assert log_of(*msgs).after(msgs[3].msg_id, "b") == []


def test_resume_after_a_piece_gives_the_rest_of_its_message_cut_the_same_way() -> None:
    big, after = printed("x" * 1000), printed("after")
    log = log_of(big, after)
    log.chunk = 300
    pieces = split_stream(big, 300)
    rest = log.after(pieces[1].msg_id, "b")
    assert [m.msg_id for m in rest] == [m.msg_id for m in pieces[2:]] + [after.msg_id]
    assert [m.content for m in rest[:-1]] == [m.content for m in pieces[2:]]


def test_an_id_not_in_the_log_gets_a_notice_then_the_whole_log() -> None:
    msgs = [printed(str(i)) for i in range(3)]
    notice, *rest = log_of(*msgs).after("gone-7", "b")
    assert "gone-7" in notice.content_dict()["text"] and notice.content_dict()["name"] == "stderr"
    assert rest == msgs


def test_without_a_resume_point_a_reconnect_gets_what_came_after_the_session_left() -> None:
    before, missed = printed("seen"), printed("missed")
    log = log_of(before)
    assert log.since_detached("b") == []  # never left: nothing to replay
    log.detached()
    log.append(missed, missed.size)
    assert log.since_detached("b") == [missed]
    assert log.since_detached("b") == []  # once


def test_what_the_bound_dropped_while_away_is_counted_in_a_notice() -> None:
    log = log_of(printed("seen"), max_messages=2)
    log.detached()
    missed = [printed(str(i)) for i in range(5)]
    for msg in missed:
        log.append(msg, msg.size)
    notice, *rest = log.since_detached("b")
    text = notice.content_dict()["text"]
    assert text.startswith("[kernel-broker] 3 messages (") and "were dropped" in text
    assert f"({sum(m.size for m in missed[:3])} bytes)" in text
    assert rest == missed[3:]
