"""What differs per language around the kernels: snapshots (Python only, said plainly) and
warm pools per kernelspec."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ..broker_process import RunningBroker, start_broker
from ..test_pools import metric, wait_for_pool
from .conftest import ALL, BASH, DENO, Language, R, installed

pytestmark = [pytest.mark.slow, pytest.mark.languages]


@pytest.fixture(scope="module")
def snapshot_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("lang-snapshots")
    b = start_broker(tmp, "--pool-size=0", f"--snapshot-dir={tmp / 'snapshots'}", env=broker_env)
    yield b
    b.stop()


@pytest.mark.parametrize("language", ALL)
def test_snapshot_of_a_non_python_kernel_is_a_clear_501(
    snapshot_broker: RunningBroker, language: Language
) -> None:
    kernel = snapshot_broker.start_kernel(language.kernelspec)
    try:
        r = snapshot_broker.request("POST", f"/api/kernels/{kernel}/snapshots")
    finally:
        snapshot_broker.delete_kernel(kernel)
    assert r.status_code == 501
    body = r.json()
    assert set(body) >= {"reason", "message"}
    assert "Python kernel" in body["message"] and language.language in body["message"]


@pytest.mark.parametrize("language", ALL)
def test_restore_into_a_non_python_kernel_is_a_clear_501(
    snapshot_broker: RunningBroker, language: Language
) -> None:
    python = snapshot_broker.start_kernel()
    kernel = snapshot_broker.start_kernel(language.kernelspec)
    try:
        snapshot_broker.execute(python, "kept = 1")
        taken = snapshot_broker.request("POST", f"/api/kernels/{python}/snapshots")
        assert taken.status_code == 201, taken.text
        body = {"snapshot": taken.json()["id"]}
        r = snapshot_broker.request("POST", f"/api/kernels/{kernel}/restore", body)
    finally:
        snapshot_broker.delete_kernel(python)
        snapshot_broker.delete_kernel(kernel)
    assert r.status_code == 501
    assert "Python kernel" in r.json()["message"] and language.language in r.json()["message"]


POOLED = [lang for lang in (BASH, DENO, R) if installed(lang)]


@pytest.fixture(scope="module")
def pool_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    sizes = [f"--KernelPools.sizes={lang.kernelspec}=1" for lang in POOLED]
    b = start_broker(tmp_path_factory.mktemp("lang-pools"), *sizes, env=broker_env)
    yield b
    b.stop()


def pool_requests(b: RunningBroker, spec: str, outcome: str) -> float:
    return metric(b, "broker_pool_requests_total", spec=spec, outcome=outcome)


@pytest.mark.parametrize("language", ALL)
async def test_pool_hands_out_a_warm_kernel_of_the_language(
    pool_broker: RunningBroker, language: Language
) -> None:
    await wait_for_pool(pool_broker, 1, spec=language.kernelspec)
    hits = pool_requests(pool_broker, language.kernelspec, "hit")
    began = time.perf_counter()
    kernel = pool_broker.start_kernel(language.kernelspec)
    elapsed = time.perf_counter() - began
    try:
        assert pool_requests(pool_broker, language.kernelspec, "hit") == hits + 1
        assert pool_broker.stdout(kernel, language.hello) == "hello 42\n"
    finally:
        pool_broker.delete_kernel(kernel)
    print(f"pooled {language.kernelspec} start took {elapsed * 1000:.0f} ms")


@pytest.mark.parametrize("language", ALL)
def test_pooled_kernel_asked_for_a_working_dir_starts_cold(
    pool_broker: RunningBroker, language: Language, tmp_path
) -> None:
    """A pooled kernel's directory is changed by Python code; another language's pooled
    kernel cannot take it, so the request gets a new kernel started in that directory."""
    misses = pool_requests(pool_broker, language.kernelspec, "miss")
    kernel = pool_broker.start_kernel(language.kernelspec, KERNEL_WORKING_DIR=str(tmp_path))
    try:
        assert pool_requests(pool_broker, language.kernelspec, "miss") == misses + 1
        assert pool_broker.stdout(kernel, language.pwd) == f"{tmp_path}\n"
    finally:
        pool_broker.delete_kernel(kernel)
