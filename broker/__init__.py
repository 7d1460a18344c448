"""Kernel Broker: a Jupyter kernel gateway for local and Kubernetes kernels."""

__version__ = "0.1.0"
