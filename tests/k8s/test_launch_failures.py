"""Each way a pod kernel can fail to start: a clear error, fast, and nothing left behind."""

from __future__ import annotations

import time

import pytest

from broker.provisioners.kubernetes import KernelLaunchError

from .images import Image, kernel_image

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio]


async def start_fails(km, **env) -> str:
    """Start a kernel that must fail; returns the error message."""
    with pytest.raises(KernelLaunchError) as failure:
        await km.start_kernel(env={"KERNEL_USERNAME": "alice", **env})
    return str(failure.value)


def assert_nothing_left(plane) -> None:
    assert plane.objects("pods") == []
    assert plane.objects("secrets") == []


async def test_unknown_image_reports_image_pull_failure(control_plane, pod_kernel):
    message = await start_fails(pod_kernel(image="registry.example/nope:1"))
    assert "registry.example/nope:1 could not be pulled" in message
    assert "check the image name" in message
    assert_nothing_left(control_plane)


async def test_pod_that_fits_no_node_reports_unschedulable(control_plane, pod_kernel):
    km = pod_kernel(node_selector={"gpu": "a100"})
    message = await start_fails(km)
    assert "cannot be scheduled" in message and "node affinity/selector" in message
    assert_nothing_left(control_plane)


async def test_request_above_node_capacity_reports_insufficient_cpu(control_plane, pod_kernel):
    km = pod_kernel(max_cpus="64")
    message = await start_fails(km, KERNEL_CPUS="16")
    assert "Insufficient cpu" in message and "KERNEL_CPUS" in message
    assert_nothing_left(control_plane)


async def test_kernel_that_exits_reports_exit_code(control_plane, pod_kernel, tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('cannot start', file=sys.stderr)\nsys.exit(3)\n")
    image = kernel_image()
    control_plane.images["crashing:1"] = Image(
        files={**image.files, "/opt/kernel/entrypoint.py": str(crash)}, runtime=image.runtime
    )
    message = await start_fails(pod_kernel(image="crashing:1"))
    assert "exited with code 3" in message and "logs" in message
    assert_nothing_left(control_plane)


async def test_root_image_with_run_as_non_root_reports_config_error(control_plane, pod_kernel):
    control_plane.images["rooty:1"] = kernel_image(user=0)
    # run_as_user None: the pod leaves the user to the image, whose USER is root
    message = await start_fails(pod_kernel(image="rooty:1", run_as_user=None))
    assert "could not be configured" in message and "runAsNonRoot" in message
    assert_nothing_left(control_plane)


async def test_slow_start_beyond_kernel_launch_timeout_times_out(control_plane, pod_kernel):
    control_plane.kubelet.start_delay = 30
    began = time.monotonic()
    message = await start_fails(pod_kernel(), KERNEL_LAUNCH_TIMEOUT="1")
    assert time.monotonic() - began < 10
    assert "not ready within 1 s" in message and "KERNEL_LAUNCH_TIMEOUT" in message
    assert_nothing_left(control_plane)


@pytest.mark.slow
async def test_slow_image_pull_within_timeout_still_starts(control_plane, pod_kernel):
    control_plane.images["slow:1"] = kernel_image(pull_seconds=1.0)
    km = pod_kernel(image="slow:1")
    await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    await km.shutdown_kernel(now=True)
    assert_nothing_left(control_plane)


async def test_memory_above_bound_is_rejected_before_any_pod(control_plane, pod_kernel):
    message = await start_fails(pod_kernel(max_memory="2Gi"), KERNEL_MEMORY="64Gi")
    assert "above this broker's limit of 2Gi" in message
    assert not any(m == "POST" for m, _ in control_plane.api.requests)


async def test_api_server_error_on_create_leaves_nothing(control_plane, pod_kernel):
    control_plane.api.fail("POST", r"/secrets$", code=500)
    km = pod_kernel()
    with pytest.raises(Exception, match="500"):
        await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    assert_nothing_left(control_plane)
