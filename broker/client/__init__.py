"""The public client side of a broker: REST calls and websocket channels (no server code)."""

from .channels import ChannelsConnection
from .rest import BrokerAPIError, BrokerREST

__all__ = ["BrokerAPIError", "BrokerREST", "ChannelsConnection"]
