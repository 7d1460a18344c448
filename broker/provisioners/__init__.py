"""Kernel provisioners: where and how a kernel process runs (jupyter_client provisioner API)."""
