"""The public client side of a broker: REST calls, websocket channels, and a kernel manager
and client that nbclient and scripts use (no server code)."""

from .channels import ChannelsConnection, stream_text
from .kernel_client import RemoteKernelClient
from .manager import RemoteKernelManager
from .rest import BrokerAPIError, BrokerREST

__all__ = [
    "BrokerAPIError",
    "BrokerREST",
    "ChannelsConnection",
    "RemoteKernelClient",
    "RemoteKernelManager",
    "stream_text",
]
