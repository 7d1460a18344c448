"""Which kernelspecs a broker offers: none that runs in the broker when it runs in a pod,
and only the operator's allow-list when there is one (on start as well as in listings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..broker_process import start_broker

pytestmark = [pytest.mark.k8s, pytest.mark.slow]  # a deployed broker per test

IN_A_POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def serve(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``kernel-broker serve`` that is expected to exit at startup."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    cmd = [sys.executable, "-m", "broker", "serve", "--port=0", "--token=t", *args]
    return subprocess.run(
        cmd, env={**environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_in_a_pod_a_local_default_kernel_stops_the_broker_with_what_to_set(tmp_path):
    result = serve(tmp_path, **IN_A_POD)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("kernel-broker serve: the default kernel is not offered.")
    assert "--default-kernel" in line and "BROKER_LOCAL_KERNELS" in line


def test_no_local_kernels_flag_refuses_them_outside_a_pod_too(tmp_path):
    result = serve(tmp_path, "--no-local-kernels")
    assert result.returncode == 1 and "'python3' would run its kernel" in result.stderr


def test_broker_local_kernels_1_offers_them_in_a_pod(tmp_path):
    env = {**IN_A_POD, "BROKER_LOCAL_KERNELS": "1"}
    broker = start_broker(tmp_path, "--pool-size=0", env=env)
    try:
        listed = broker.request("GET", "/api/kernelspecs").json()
        assert listed["default"] == "python3" and "python3" in listed["kernelspecs"]
    finally:
        broker.stop()


def test_allowed_kernelspecs_refuses_to_start_the_others(tmp_path):
    spec = tmp_path / "jupyter" / "kernels" / "python3-allowed"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "allowed", "language": "python"})
    )
    broker = start_broker(
        tmp_path,
        "--pool-size=0",
        "--default-kernel=python3-allowed",
        "--KernelSpecManager.allowed_kernelspecs=python3-allowed",
        env={"JUPYTER_PATH": str(tmp_path / "jupyter")},
    )
    try:
        assert list(broker.request("GET", "/api/kernelspecs").json()["kernelspecs"]) == [
            "python3-allowed"
        ]
        refused = broker.request("POST", "/api/kernels", {"name": "python3"})
        assert refused.status_code == 403
        assert "allowed_kernelspecs" in refused.json()["message"]
        assert "python3-allowed" in refused.json()["message"]
    finally:
        broker.stop()
