"""The measurements, each against any driver: cold start, round trip, output throughput, bursts."""

from __future__ import annotations

import asyncio
import binascii
import time
from dataclasses import asdict, dataclass
from typing import Any

from .drivers import Driver, Kernel, Output

WARMUP_EXECUTES = 5


@dataclass(frozen=True)
class Sizes:
    """How much work one round does; ``quick()`` is for smoke tests."""

    cold_starts: int = 5
    executes: int = 200
    print_lines: int = 50
    print_line_chars: int = 1_000_000
    png_images: int = 20
    png_image_bytes: int = 1_000_000
    concurrent: int = 20
    passes: int = 3  # steady-state passes per round; the round trips are shared among them

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            cold_starts=1,
            executes=20,
            print_lines=5,
            print_line_chars=100_000,
            png_images=4,
            png_image_bytes=100_000,
            concurrent=2,
            passes=1,
        )

    @property
    def executes_per_pass(self) -> int:
        return max(1, self.executes // self.passes)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def print_code(self) -> str:
        return f"for _ in range({self.print_lines}):\n    print('x' * {self.print_line_chars})"

    @property
    def print_expected(self) -> int:
        return self.print_lines * (self.print_line_chars + 1)  # each print adds a newline

    @property
    def png_setup_code(self) -> str:
        """Made before the timed run, so that only transport is timed, not os.urandom."""
        return (
            "import os\n"
            "from IPython.display import Image, display\n"
            f"_bench_png = [b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom({self.png_image_bytes - 8})"
            f" for _ in range({self.png_images})]"
        )

    png_code = "for _png in _bench_png:\n    display(Image(data=_png, format='png'))"

    @property
    def png_expected(self) -> int:
        return self.png_images * self.png_image_bytes


async def timed_start(driver: Driver) -> tuple[float, Kernel]:
    """Seconds from the start request until the kernel answered kernel_info."""
    t0 = time.perf_counter()
    kernel = await driver.start_kernel()
    return time.perf_counter() - t0, kernel


async def cold_starts(driver: Driver, n: int) -> list[float]:
    """``n`` kernels one after another; each is shut down before the next (not timed)."""
    samples = []
    for _ in range(n):
        seconds, kernel = await timed_start(driver)
        samples.append(seconds)
        await kernel.close()
    return samples


async def round_trips(kernel: Kernel, n: int) -> list[float]:
    """Seconds per ``1+1``, back to back, each until its reply and idle status arrived."""
    for _ in range(WARMUP_EXECUTES):
        await kernel.execute("1+1")
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await kernel.execute("1+1")
        samples.append(time.perf_counter() - t0)
    return samples


def _stdout_bytes(outputs: list[Output]) -> int:
    return sum(
        len(o.content.get("text", ""))
        for o in outputs
        if o.msg_type == "stream" and o.content.get("name") == "stdout"
    )


def _png_bytes(outputs: list[Output]) -> int:
    return sum(
        len(binascii.a2b_base64(o.content["data"]["image/png"]))
        for o in outputs
        if o.msg_type in ("display_data", "update_display_data")
        and "image/png" in o.content.get("data", {})
    )


async def printed_output(kernel: Kernel, sizes: Sizes) -> dict[str, float]:
    """Throughput of ``print`` output, and how much of it never arrived."""
    t0 = time.perf_counter()
    outputs = await kernel.execute(sizes.print_code)
    return _throughput(time.perf_counter() - t0, sizes.print_expected, _stdout_bytes(outputs))


async def png_output(kernel: Kernel, sizes: Sizes) -> dict[str, float]:
    """Throughput of PNG display data (decoded bytes), and how much of it never arrived."""
    await kernel.execute(sizes.png_setup_code)
    t0 = time.perf_counter()
    outputs = await kernel.execute(sizes.png_code)
    return _throughput(time.perf_counter() - t0, sizes.png_expected, _png_bytes(outputs))


def _throughput(seconds: float, expected: int, received: int) -> dict[str, float]:
    return {
        "seconds": seconds,
        "mb_per_s": received / 1e6 / seconds,
        "bytes_expected": expected,
        "bytes_received": received,
        "bytes_dropped": max(0, expected - received),
    }


async def concurrent_starts(driver: Driver, n: int) -> dict[str, Any]:
    """``n`` starts at once: wall time until every one is ready or failed, and the failures."""
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(driver.start_kernel() for _ in range(n)), return_exceptions=True
    )
    wall = time.perf_counter() - t0
    kernels = [r for r in results if not isinstance(r, BaseException)]
    errors = [f"{type(r).__name__}: {r}"[:300] for r in results if isinstance(r, BaseException)]
    await asyncio.gather(*(k.close() for k in kernels), return_exceptions=True)
    return {"wall_s": wall, "started": len(kernels), "failures": len(errors), "errors": errors}
