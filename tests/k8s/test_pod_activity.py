"""What replicas record of a kernel's use on its pod, and how often they write it."""

from __future__ import annotations

import pytest

from broker.provisioners.podactivity import (
    BUSY_AT,
    CONNECTED_AT,
    LAST_ACTIVITY,
    Activity,
    fresh,
    parse_time,
    recorded,
    to_record,
)
from broker.timestamps import format_time

pytestmark = pytest.mark.k8s

NOW = 1_800_000_000.0


def pod(**annotations: str) -> dict:
    return {
        "metadata": {
            "creationTimestamp": format_time(NOW - 3600)[:19] + "Z",  # as the API server writes it
            "annotations": annotations,
        }
    }


def test_a_pod_nobody_used_counts_its_creation_as_its_last_activity():
    assert recorded(pod()) == Activity(last=NOW - 3600)


def test_what_replicas_wrote_is_read_back_to_the_microsecond():
    notes = {LAST_ACTIVITY: format_time(NOW - 10.5), CONNECTED_AT: format_time(NOW - 1)}
    assert recorded(pod(**notes)) == Activity(last=NOW - 10.5, connected=NOW - 1)


@pytest.mark.parametrize("garbage", ["", "yesterday", "2026-13-45T00:00:00Z", "12"])
def test_a_value_written_by_hand_reads_as_never_and_breaks_nothing(garbage):
    assert parse_time(garbage) == 0.0
    assert recorded(pod(**{BUSY_AT: garbage})).busy == 0.0


def test_an_idle_unconnected_kernel_costs_no_write():
    known = Activity(last=NOW - 100)
    assert to_record(Activity(last=NOW - 100), known, NOW, interval=30) == {}


def test_activity_is_written_only_once_the_pod_is_an_interval_behind():
    known = Activity(last=NOW - 100)
    assert to_record(Activity(last=NOW - 80), known, NOW, interval=30) == {}
    assert to_record(Activity(last=NOW - 60), known, NOW, interval=30) == {
        LAST_ACTIVITY: format_time(NOW - 60)
    }


def test_a_silent_connection_is_refreshed_every_interval_and_lapses_after_two():
    seen = Activity(last=NOW - 500, connected=NOW)
    assert to_record(seen, Activity(last=NOW - 500, connected=NOW - 10), NOW, 30) == {}
    assert to_record(seen, Activity(last=NOW - 500, connected=NOW - 30), NOW, 30) == {
        CONNECTED_AT: format_time(NOW)
    }
    assert fresh(NOW - 60, NOW, 30) and not fresh(NOW - 66, NOW, 30)
