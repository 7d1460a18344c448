"""Why a client could not use a broker, in one line that says what to do next.

``kernel-broker run`` and ``llm-agent`` both start a kernel on a broker a user named; the
raw exceptions (``ConnectionRefusedError: [Errno 111]``, ``BrokerAPIError: 401 ...``) name
neither the URL nor the option to change.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from websockets.exceptions import InvalidStatus

from .rest import BrokerAPIError, BrokerREST


@dataclass(frozen=True)
class Options:
    """How the calling program spells the settings a fix would change."""

    url: str  # e.g. "--url or BROKER_URL"
    token: str
    kernel: str


async def explain(
    error: BaseException, url: str, token: str | None, options: Options, kernel_name: str = ""
) -> str:
    """One line for a failure to reach the broker at ``url`` or to start a kernel there
    (``kernel_name`` is the kernelspec asked for; empty for the broker's default)."""
    if isinstance(error, BrokerAPIError):
        return await _api_error(error, url, token, options, kernel_name)
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        return f"the broker at {url} refused the websocket ({status}): {error}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host of {url} ({error.strerror}): check {options.url}"
    if isinstance(error, ConnectionRefusedError):
        return (
            f"cannot reach the broker at {url}: connection refused; start one "
            f"(./kb serve listens on http://127.0.0.1:8889) or give its URL with {options.url}"
        )
    if isinstance(error, ConnectionError | TimeoutError):
        return f"cannot reach the broker at {url}: {error.strerror or error}; check {options.url}"
    return f"{type(error).__name__}: {error}"


async def _api_error(
    error: BrokerAPIError, url: str, token: str | None, options: Options, kernel_name: str
) -> str:
    if error.status == 401:
        return (
            f"the broker at {url} refused the token: give the token it printed at startup "
            f"with {options.token}"
        )
    if error.status == 404:
        offered = await _kernelspecs(url, token)
        if offered is not None:
            return (
                f"the broker at {url} has no kernelspec {kernel_name!r}; it offers "
                f"{', '.join(offered) or 'none'}: pick one with {options.kernel}"
            )
    return f"the broker at {url} answered {error}"


async def _kernelspecs(url: str, token: str | None) -> list[str] | None:
    """The kernelspec names the broker offers this token, or None when it will not say."""
    try:
        listing = await BrokerREST(url, token, timeout=10).kernelspecs()
        return sorted(listing["kernelspecs"])
    except Exception:  # not a broker after all, or gone: the caller says what it knows
        return None
