"""Messages kept for a websocket session while it is disconnected, bounded in bytes and count."""

from __future__ import annotations

import json
from collections import deque

from .wire import Message, make_message


class ReplayBuffer:
    """A FIFO that drops the oldest messages past its bounds and says so on replay."""

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._messages: deque[Message] = deque()
        self._bytes = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self._first_dropped_parent: bytes | None = None

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(self, msg: Message) -> None:
        self._messages.append(msg)
        self._bytes += msg.size
        while self._messages and (
            self._bytes > self.max_bytes or len(self._messages) > self.max_messages
        ):
            old = self._messages.popleft()
            self._bytes -= old.size
            self.dropped += 1
            self.dropped_bytes += old.size
            if self._first_dropped_parent is None:
                self._first_dropped_parent = old.parent_header

    def drain(self, session: str) -> list[Message]:
        """Everything buffered, oldest first, after a stderr marker when messages were dropped."""
        out = list(self._messages)
        if self.dropped:
            parent = json.loads(self._first_dropped_parent or b"{}")
            marker = make_message(
                "iopub",
                "stream",
                {
                    "name": "stderr",
                    "text": f"[kernel-broker] {self.dropped} messages ({self.dropped_bytes} "
                    "bytes) were dropped while this client was disconnected; the replay "
                    "buffer (--KernelRegistry.replay_buffer_bytes) was full.\n",
                },
                session=session,
                parent=parent,
            )
            out.insert(0, marker)
        self._messages.clear()
        self._bytes = self.dropped = self.dropped_bytes = 0
        self._first_dropped_parent = None
        return out
