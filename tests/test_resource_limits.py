"""Per-kernel operating-system limits on local kernels (setrlimit in the kernel process)."""

from __future__ import annotations

import pytest

from .broker_process import start_broker

pytestmark = pytest.mark.slow

GIB = 1024**3


def test_limits_apply_to_every_local_kernel(tmp_path, broker_env) -> None:
    b = start_broker(
        tmp_path,
        f"--BrokerLocalProvisioner.memory_limit={4 * GIB}",
        "--BrokerLocalProvisioner.cpu_time_limit=3600",
        "--BrokerLocalProvisioner.open_files_limit=256",
        "--pool-size=1",
        env=broker_env,
    )
    try:
        for env in ({}, {"KERNEL_EXTRA": "cold"}):  # a pooled and a cold kernel
            kernel = b.start_kernel(**env)
            code = (
                "import resource as r\n"
                "print([r.getrlimit(x)[0] for x in (r.RLIMIT_AS, r.RLIMIT_CPU, r.RLIMIT_NOFILE)])"
            )
            assert b.stdout(kernel, code) == f"[{4 * GIB}, 3600, 256]\n"
            b.delete_kernel(kernel)
    finally:
        b.stop()


def test_a_kernel_over_its_memory_limit_gets_memory_error_not_the_host(tmp_path, broker_env):
    b = start_broker(
        tmp_path,
        f"--BrokerLocalProvisioner.memory_limit={2 * GIB}",
        "--pool-size=0",
        env=broker_env,
    )
    try:
        kernel = b.start_kernel()
        events = b.execute(kernel, "x = bytearray(3 * 1024**3)")
        assert any(e["type"] == "error" and e["name"] == "MemoryError" for e in events)
        assert b.stdout(kernel, "print('still here')") == "still here\n"
    finally:
        b.stop()
