"""A kernel's activity as every replica can read it: annotations on the kernel's pod.

Each replica sees only the traffic of its own websockets. So that the Lease holder can
cull a kernel served elsewhere, and any replica can list it with its last activity, every
replica writes what it saw onto the pod, at most once per interval per kernel, and reads
what the others wrote from its watch-fed cache (no request):

- ``last-activity``: the newest message to or from the kernel a replica saw;
- ``connected-at``: when a replica last had a websocket open on the kernel (refreshed
  every interval while it has one: a silent websocket keeps it fresh);
- ``busy-at``: when a replica last saw the kernel busy (refreshed likewise).

Each key is written only by merge patch of that key, so two replicas never erase each
other's values. Pure functions over the pod dict and plain floats (epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..timestamps import format_time
from .pod import GROUP

LAST_ACTIVITY = f"{GROUP}/last-activity"
CONNECTED_AT = f"{GROUP}/connected-at"
BUSY_AT = f"{GROUP}/busy-at"


@dataclass(frozen=True)
class Activity:
    """What is known of a kernel's use, in epoch seconds (0: never)."""

    last: float = 0.0
    connected: float = 0.0
    busy: float = 0.0


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp as the API server or ``format_time`` writes
    it; 0 for anything else (a value written by hand must not break culling)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0


def recorded(pod: dict[str, Any]) -> Activity:
    """The activity the replicas recorded on this pod (its creation counts as activity)."""
    meta = pod.get("metadata") or {}
    notes = meta.get("annotations") or {}
    created = parse_time(meta.get("creationTimestamp", ""))
    return Activity(
        last=max(created, parse_time(notes.get(LAST_ACTIVITY, ""))),
        connected=parse_time(notes.get(CONNECTED_AT, "")),
        busy=parse_time(notes.get(BUSY_AT, "")),
    )


def to_record(seen: Activity, known: Activity, now: float, interval: float) -> dict[str, str]:
    """The annotations to write so that the pod says what this replica ``seen``, given
    what it already says (``known``); empty when it is recent enough.

    Rate limit: a value is rewritten only once the recorded one is ``interval`` or more
    behind, so each kernel costs at most one patch per interval and idle kernels none.
    """
    patch = {}
    if seen.last - known.last >= interval:
        patch[LAST_ACTIVITY] = format_time(seen.last)
    if seen.connected and now - known.connected >= interval:
        patch[CONNECTED_AT] = format_time(now)
    if seen.busy and now - known.busy >= interval:
        patch[BUSY_AT] = format_time(now)
    return patch


def fresh(stamp: float, now: float, interval: float) -> bool:
    """Whether a ``connected-at`` or ``busy-at`` stamp still holds: its writer refreshes it
    every ``interval``, so one older than two intervals (plus a margin for the patch and
    the watch) was left by a replica that stopped seeing it, or died."""
    return now - stamp < 2 * interval + 5
