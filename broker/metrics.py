"""Counters the broker keeps, rendered in the Prometheus text format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Process-wide counters; gauges are computed by the caller at render time."""

    def __init__(self) -> None:
        self.messages: Counter[tuple[str, str]] = Counter()
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.kernel_starts: Counter[str] = Counter()  # by outcome: ok, error
        self.start_buckets = [0] * len(_START_BUCKETS)
        self.start_sum = 0.0
        self.start_count = 0
        self.http_errors: Counter[int] = Counter()
        self.pool_requests: Counter[tuple[str, str]] = Counter()  # (spec, hit|miss)
        self.refill_sum = 0.0
        self.refill_count = 0

    def observe_refill(self, seconds: float) -> None:
        self.refill_sum += seconds
        self.refill_count += 1

    def count_message(self, direction: str, channel: str, nbytes: int) -> None:
        self.messages[direction, channel] += 1
        self.bytes[direction, channel] += nbytes

    def observe_start(self, seconds: float, ok: bool) -> None:
        self.kernel_starts["ok" if ok else "error"] += 1
        if not ok:
            return
        self.start_sum += seconds
        self.start_count += 1
        for i, bound in enumerate(_START_BUCKETS):
            if seconds <= bound:
                self.start_buckets[i] += 1

    def render(self, gauges: Iterable[tuple[str, str, dict[str, str], float]]) -> str:
        """The exposition text; ``gauges`` are (name, help, labels, value) computed now."""
        out: list[str] = []
        seen: set[str] = set()

        def metric(name: str, kind: str, help_: str, labels: dict[str, str], value: float) -> None:
            if name not in seen:
                seen.add(name)
                out.append(f"# HELP {name} {help_}")
                out.append(f"# TYPE {name} {kind}")
            label = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")

        for name, help_, labels, value in gauges:
            metric(name, "gauge", help_, labels, value)
        for (direction, channel), n in sorted(self.messages.items()):
            labels = {"direction": direction, "channel": channel}
            metric("broker_messages_total", "counter", "Messages bridged.", labels, n)
        for (direction, channel), n in sorted(self.bytes.items()):
            labels = {"direction": direction, "channel": channel}
            metric("broker_message_bytes_total", "counter", "Bytes bridged.", labels, n)
        for outcome, n in sorted(self.kernel_starts.items()):
            metric(
                "broker_kernel_starts_total", "counter", "Kernel starts.", {"outcome": outcome}, n
            )
        for (spec, outcome), n in sorted(self.pool_requests.items()):
            labels = {"spec": spec, "outcome": outcome}
            metric("broker_pool_requests_total", "counter", "Starts by pool outcome.", labels, n)
        metric(
            "broker_pool_refill_seconds_sum",
            "counter",
            "Time spent refilling.",
            {},
            self.refill_sum,
        )
        metric(
            "broker_pool_refill_seconds_count",
            "counter",
            "Pool kernels started.",
            {},
            self.refill_count,
        )
        for status, n in sorted(self.http_errors.items()):
            labels = {"status": str(status)}
            metric("broker_http_errors_total", "counter", "Error responses.", labels, n)
        name = "broker_kernel_start_seconds"
        out.append(f"# HELP {name} Seconds from start request to kernel_info reply.")
        out.append(f"# TYPE {name} histogram")
        for bound, n in zip(_START_BUCKETS, self.start_buckets, strict=True):
            out.append(f'{name}_bucket{{le="{bound:g}"}} {n}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.start_count}')
        out.append(f"{name}_sum {self.start_sum:g}")
        out.append(f"{name}_count {self.start_count}")
        return "\n".join(out) + "\n"
