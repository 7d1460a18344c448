"""Limits raised to what hundreds of kernels and a thousand websockets need.

Every websocket is a file descriptor, and so is every ZMQ socket (its mailbox) and each of
its connections: a kernel costs the broker five sockets (four bridged channels and its
manager's control socket). Two defaults stop a broker long before memory does: the common
soft limit of 1,024 open files, and ZMQ's limit of 1,023 sockets per context (about 200
kernels), which is where Enterprise Gateway's starts failed in ``python -m bench.load``.
"""

from __future__ import annotations

import resource

import zmq
import zmq.asyncio


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (kernels started
    from here inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # an unlimited hard limit the kernel caps lower
            pass
    return soft


def zmq_context() -> zmq.asyncio.Context:
    """An asyncio ZMQ context allowed as many sockets as this process may open files."""
    context = zmq.asyncio.Context()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = context.get(zmq.SOCKET_LIMIT)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    context.set(zmq.MAX_SOCKETS, max(limit, context.get(zmq.MAX_SOCKETS)))
    return context
