"""Many pod kernels at once share one watch and start without failures."""

from __future__ import annotations

import asyncio

import pytest

from .test_pod_kernels import assert_nothing_left

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio]


@pytest.mark.slow
async def test_thirty_pod_kernels_start_concurrently(control_plane, pod_kernel):
    kms = [pod_kernel(launch_timeout=120) for _ in range(30)]
    try:
        await asyncio.gather(*(km.start_kernel(env={"KERNEL_USERNAME": "u"}) for km in kms))
        assert len({km.ip for km in kms}) == 30
        watches = [p for m, p in control_plane.api.requests if m == "GET" and p.endswith("/pods")]
        assert len(watches) <= 3  # one list and one watch for all kernels, not one per kernel
    finally:
        await asyncio.gather(*(km.shutdown_kernel(now=True) for km in kms))
    assert_nothing_left(control_plane)
