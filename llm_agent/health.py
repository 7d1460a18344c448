"""Whether the broker and the model server can be reached, said as the errors say it.

`llm-agent serve` answers ``GET /api/status`` with this, so that its page can tell a
person what is down before they type a question; ``llm-agent ask`` words its failures
with the same options.
"""

from __future__ import annotations

import asyncio

import openai
from websockets.exceptions import InvalidStatus

from broker.client import BrokerAPIError, BrokerREST
from broker.client.failures import Options, explain

from .kernel import KernelGone
from .llm import ChatModel

# `./kb serve` listens there; how this program spells the settings an error may point to
DEFAULT_BROKER = "http://127.0.0.1:8889"
BROKER_OPTIONS = Options(
    url="--broker or BROKER_URL", token="--token or BROKER_TOKEN", kernel="--kernel-name"
)
BROKER_ERRORS = (BrokerAPIError, OSError, InvalidStatus, KernelGone)
CHECK_TIMEOUT = 10.0  # seconds a check may take: a page waits for it


async def broker_problem(url: str, token: str | None) -> str:
    """``""`` when the broker answers with this token, else one line saying why not."""
    try:
        await BrokerREST(url, token, timeout=CHECK_TIMEOUT).kernelspecs()
    except BROKER_ERRORS as e:
        return await explain(e, url, token, BROKER_OPTIONS)
    return ""


async def model_problem(model: ChatModel) -> str:
    """``""`` when the model server answers (any answer but a refused key), else one line.

    Not every OpenAI-compatible server lists its models, so only an unreachable server
    or a refused key count as problems.
    """
    client = model.client.with_options(max_retries=0, timeout=CHECK_TIMEOUT)
    try:
        await client.models.list()
    except (openai.APIConnectionError, openai.AuthenticationError) as e:
        return model.explain(e)
    except openai.APIError:
        pass
    return ""


async def status(url: str, token: str | None, model: ChatModel) -> dict[str, dict[str, object]]:
    """``{"broker": {"ok", "message"}, "model": {"ok", "message"}}``."""
    broker, llm = await asyncio.gather(broker_problem(url, token), model_problem(model))
    return {
        "broker": {"ok": not broker, "message": broker},
        "model": {"ok": not llm, "message": llm},
    }
