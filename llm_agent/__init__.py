"""An LLM agent that analyses data by running Python in Kernel Broker kernels.

It talks to a broker only over HTTP and websocket (through ``broker.client``) and to
any OpenAI-compatible Chat Completions server through the ``openai`` SDK.
"""

from broker.client.results import Execution, ExecutionError, Logs, Result

from .agent import Agent, AgentConfig
from .collector import Callbacks
from .files import download, upload, upload_file
from .kernel import KernelGone, KernelSession
from .llm import ChatModel
from .transcript import Transcript

__all__ = [
    "Agent",
    "AgentConfig",
    "Callbacks",
    "ChatModel",
    "Execution",
    "ExecutionError",
    "KernelGone",
    "KernelSession",
    "Logs",
    "Result",
    "Transcript",
    "download",
    "upload",
    "upload_file",
]
