"""What a websocket session was sent, kept so that a reconnect receives what it did not.

Every session of a kernel logs the messages delivered to it (iopub fan-out and the
replies routed to it), always, bounded in bytes and count, oldest dropped first. The
log holds references: a message delivered to several sessions is stored once, so the
memory is about the bound per kernel, not per session. A reconnect resumes after the
last msg_id the client received (``resume_after``) or, without one (JupyterLab and
Jupyter Server reconnect that way), where the session's last connection left.
"""

from __future__ import annotations

import json
from collections import deque
from itertools import islice

from .wire import Message, make_message, split_stream


class SessionLog:
    """The newest messages delivered to one session, in delivery order."""

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        # The size the session's connection cut stream messages at (pieces ``{msg_id}-{n}``):
        # a resume from a piece cuts the message the same way to find the pieces after it.
        self.chunk = 0
        self._messages: deque[Message] = deque()
        self._bytes = 0
        self._first = 0  # sequence number of the oldest message held
        self._dropped_bytes = 0  # bytes of every message dropped so far
        self._gap_parent: bytes | None = None  # parent header of the newest message dropped
        self._detached: tuple[int, int] | None = None  # (sequence, bytes logged before it)

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(self, msg: Message, size: int) -> None:
        """Log a delivered message (``size`` is ``msg.size``, computed once per fan-out)."""
        self._messages.append(msg)
        self._bytes += size
        while self._messages and (
            self._bytes > self.max_bytes or len(self._messages) > self.max_messages
        ):
            old = self._messages.popleft()
            self._bytes -= old.size
            self._dropped_bytes += old.size
            self._first += 1
            self._gap_parent = old.parent_header

    def detached(self) -> None:
        """The session's last connection left: a reconnect without a resume point starts here."""
        self._detached = (self._first + len(self._messages), self._dropped_bytes + self._bytes)

    def since_detached(self, session: str) -> list[Message]:
        """What was logged since the session's last connection left (nothing if it did not),
        after a stderr notice when the bound dropped some of it."""
        mark, self._detached = self._detached, None
        if mark is None:
            return []
        seq, logged = mark
        lost = self._first - seq
        if lost <= 0:
            return list(islice(self._messages, seq - self._first, None))
        notice = (
            f"{lost} messages ({self._dropped_bytes - logged} bytes) were dropped while this "
            "client was disconnected; the replay buffer (--KernelRegistry.replay_buffer_bytes) "
            "was full."
        )
        return [self._notice(notice, session), *self._messages]

    def after(self, msg_id: str, session: str) -> list[Message]:
        """Everything logged after ``msg_id``, the last message the client received.

        A piece ``{orig}-{n}`` of a split stream message is followed by that message's
        later pieces. An id not in the log (too old, or unknown) gets the whole log after
        a stderr notice.
        """
        self._detached = None
        found = self._find(msg_id)
        if found is None:
            notice = (
                f"message {msg_id} is not in this session's replay log (it holds the newest "
                "--KernelRegistry.replay_buffer_bytes); output before what follows may be "
                "missing."
            )
            return [self._notice(notice, session), *self._messages]
        index, rest_of_it = found
        return [*rest_of_it, *islice(self._messages, index + 1, None)]

    def _find(self, msg_id: str) -> tuple[int, list[Message]] | None:
        """Where ``msg_id`` is in the log, and the pieces of its message still to send."""
        orig, dash, n = msg_id.rpartition("-")
        piece = int(n) if dash and n.isdigit() else None
        last = len(self._messages) - 1
        for back, msg in enumerate(reversed(self._messages)):  # clients resume from recent ids
            if msg.msg_id == msg_id:
                return last - back, []
            if piece is not None and msg.msg_id == orig:
                return last - back, split_stream(msg, self.chunk)[piece + 1 :]
        return None

    def _notice(self, text: str, session: str) -> Message:
        """A stderr stream message in the style kernels print, under the cell of the gap."""
        return make_message(
            "iopub",
            "stream",
            {"name": "stderr", "text": f"[kernel-broker] {text}\n"},
            session=session,
            parent=json.loads(self._gap_parent or b"{}"),
        )
