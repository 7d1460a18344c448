"""Pod kernels against a test control plane: a strict fake API server and a fake kubelet."""
