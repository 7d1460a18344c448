"""Kernel state snapshots: save a kernel's variables to a file, restore them into another.

A real broker with a state directory and a users file, real kernels. The snapshot size
limit is set low (2 MB) so that the 413 is cheap to reach.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from broker import snapshot_kernel

from .broker_process import (
    RunningBroker,
    kill_recorded_kernels,
    start_broker,
    start_users_broker,
)

USERS = {
    "users": [
        {"name": "alice", "token": "alice-token"},
        {"name": "bob", "token": "bob-token"},
        {"name": "root", "token": "admin-token", "admin": True},
    ]
}
ALICE, BOB, ADMIN = "alice-token", "bob-token", "admin-token"

STATE = """
import os, socket
import pandas as pd
from dataclasses import dataclass

n = 42
words = ["a", "b"]
df = pd.DataFrame({"x": [1, 2, 3], "y": ["p", "q", "r"]})
factor = 3
def scaled(v):
    return v * factor
add = lambda a, b: a + b
def null_device():
    return os.devnull

@dataclass
class Point:
    x: int
    y: int

p = Point(1, 2)
gen = (i for i in range(3))
fh = open(os.devnull, "w")
sock = socket.socket()
_private = 1
"""


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("state")
    yield path
    kill_recorded_kernels(path)


@pytest.fixture(scope="module")
def snap_broker(tmp_path_factory, broker_env, state_dir) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("snapshots")
    b = start_users_broker(
        tmp,
        USERS,
        ADMIN,
        f"--state-dir={state_dir}",
        "--SnapshotStore.max_bytes=2000000",
        env=broker_env,
    )
    yield b
    b.stop()


@pytest.fixture
def alice_kernel(snap_broker: RunningBroker) -> Iterator[str]:
    kernel = snap_broker.start_kernel(token=ALICE)
    yield kernel
    snap_broker.delete_kernel(kernel)


@pytest.fixture(scope="module")
def idle_kernel(snap_broker: RunningBroker) -> Iterator[str]:
    """An empty kernel of Alice's for requests that fail before reaching it."""
    kernel = snap_broker.start_kernel(token=ALICE)
    yield kernel
    snap_broker.delete_kernel(kernel)


@pytest.fixture(scope="module")
def snapshot(snap_broker: RunningBroker) -> dict:
    """Alice's snapshot of a kernel holding STATE (the kernel is gone afterwards)."""
    kernel = snap_broker.start_kernel(token=ALICE)
    try:
        assert snap_broker.execute(kernel, STATE, token=ALICE)[-1]["status"] == "ok"
        r = take(snap_broker, kernel)
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == f"/api/snapshots/{r.json()['id']}"
        return r.json()
    finally:
        snap_broker.delete_kernel(kernel)


def take(broker: RunningBroker, kernel: str, token: str = ALICE) -> requests.Response:
    return broker.request("POST", f"/api/kernels/{kernel}/snapshots", token=token)


def restore(
    broker: RunningBroker, kernel: str, snapshot_id: str, token: str = ALICE
) -> requests.Response:
    return broker.request(
        "POST", f"/api/kernels/{kernel}/restore", {"snapshot": snapshot_id}, token=token
    )


def status(broker: RunningBroker, method: str, snapshot_id: str, token: str) -> int:
    return broker.request(method, f"/api/snapshots/{snapshot_id}", token=token).status_code


@pytest.mark.slow
def test_snapshot_saves_picklable_variables(snapshot: dict) -> None:
    saved = [
        "Point",
        "add",
        "dataclass",
        "df",
        "factor",
        "n",
        "null_device",
        "p",
        "scaled",
        "words",
    ]
    assert snapshot["saved"] == saved
    assert snapshot["owner"] == "alice" and snapshot["compression"] in (
        "lz4",
        "zlib",
    )  # STATE compresses well
    assert 0 < snapshot["size"] <= 2_000_000


def test_snapshot_reports_skipped_variables_with_reasons(snapshot: dict) -> None:
    skipped = snapshot["skipped"]
    assert "generator" in skipped["gen"]
    assert "socket" in skipped["sock"]
    assert "not opened for reading" in skipped["fh"]
    assert skipped["os"].startswith("module os") and skipped["pd"].startswith("module pandas")


def test_ipython_internals_and_private_names_are_left_out(snapshot: dict) -> None:
    names = set(snapshot["saved"]) | set(snapshot["skipped"])
    assert not names & {"In", "Out", "_ih", "_oh", "exit", "quit", "get_ipython", "_private"}
    assert not any(name.startswith("_") for name in names)


def test_snapshot_file_is_private_to_the_broker(snapshot: dict, state_dir: Path) -> None:
    for suffix in (".bin", ".json"):
        path = state_dir / "snapshots" / f"{snapshot['id']}{suffix}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (state_dir / "snapshots" / f"{snapshot['id']}.bin").stat().st_size == snapshot["size"]


def test_restore_into_a_fresh_kernel_gives_equal_values(snap_broker, snapshot, alice_kernel):
    r = restore(snap_broker, alice_kernel, snapshot["id"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["restored"] == snapshot["saved"] and doc["failed"] == {}
    check = """
import pandas as pd
print(n, words, add(2, 3), scaled(2), null_device())
print(df.equals(pd.DataFrame({"x": [1, 2, 3], "y": ["p", "q", "r"]})))
print(p == Point(1, 2), type(p) is Point)
"""
    assert (
        snap_broker.stdout(alice_kernel, check) == "42 ['a', 'b'] 5 6 /dev/null\nTrue\nTrue True\n"
    )


def test_restored_functions_see_the_live_namespace(snap_broker, snapshot, alice_kernel):
    restore(snap_broker, alice_kernel, snapshot["id"])
    assert snap_broker.stdout(alice_kernel, "factor = 10\nprint(scaled(2))") == "20\n"


def test_restore_reports_variables_the_new_kernel_cannot_load(snap_broker, alice_kernel, tmp_path):
    (tmp_path / "only_here.py").write_text("class Thing:\n    pass\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nimport only_here\n"
    code += "t = only_here.Thing(); k = 1"
    assert snap_broker.execute(alice_kernel, code, token=ALICE)[-1]["status"] == "ok"
    taken = take(snap_broker, alice_kernel)
    other = snap_broker.start_kernel(token=ALICE)
    try:
        doc = restore(snap_broker, other, taken.json()["id"]).json()
    finally:
        snap_broker.delete_kernel(other)
    assert "k" in doc["restored"] and "only_here" in doc["failed"]["t"]


def test_another_users_snapshot_is_refused(snap_broker, snapshot) -> None:
    bob_kernel = snap_broker.start_kernel(token=BOB)
    try:
        assert restore(snap_broker, bob_kernel, snapshot["id"], BOB).status_code == 404
    finally:
        snap_broker.delete_kernel(bob_kernel)
    r = snap_broker.request("GET", f"/api/snapshots/{snapshot['id']}", token=BOB)
    assert r.status_code == 404 and set(r.json()) == {"reason", "message"}
    assert status(snap_broker, "DELETE", snapshot["id"], BOB) == 404
    assert snap_broker.request("GET", "/api/snapshots", token=BOB).json() == []


def test_owner_and_admin_see_the_snapshot(snap_broker, snapshot) -> None:
    for token in (ALICE, ADMIN):
        listed = snap_broker.request("GET", "/api/snapshots", token=token).json()
        assert snapshot["id"] in [s["id"] for s in listed]
        one = snap_broker.request("GET", f"/api/snapshots/{snapshot['id']}", token=token)
        assert one.json() == snapshot


def test_a_snapshot_over_the_limit_is_413(snap_broker, alice_kernel) -> None:
    snap_broker.execute(
        alice_kernel, "import os; blob = os.urandom(3_000_000); small = 1", token=ALICE
    )
    r = take(snap_broker, alice_kernel)
    assert r.status_code == 413
    assert "blob" in r.json()["message"] and "2000000" in r.json()["message"]


def test_delete_removes_the_files(snap_broker, alice_kernel, state_dir) -> None:
    snap_broker.execute(alice_kernel, "v = 1", token=ALICE)
    sid = take(snap_broker, alice_kernel).json()["id"]
    assert status(snap_broker, "DELETE", sid, ALICE) == 204
    assert status(snap_broker, "GET", sid, ALICE) == 404
    assert not list((state_dir / "snapshots").glob(f"{sid}.*"))


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"snapshot": 5}, 400), ({"snapshot": "0" * 32}, 404), ({"snapshot": "../x"}, 404)],
)
def test_restore_needs_an_existing_snapshot(snap_broker, idle_kernel, body, status) -> None:
    r = snap_broker.request("POST", f"/api/kernels/{idle_kernel}/restore", body, token=ALICE)
    assert r.status_code == status and set(r.json()) == {"reason", "message"}


def test_snapshots_are_on_by_default_in_the_per_user_data_directory(
    broker: RunningBroker, kernel: str
) -> None:
    """The shared broker has no --state-dir or --snapshot-dir; its XDG_DATA_HOME is its own."""
    broker.execute(kernel, "kept = 7")
    r = take(broker, kernel, token=broker.token)
    assert r.status_code == 201, r.text
    directory = broker.log_path.parent / "xdg" / "data" / "kernel-broker" / "snapshots"
    try:
        assert (directory / f"{r.json()['id']}.bin").is_file()
    finally:
        broker.request("DELETE", f"/api/snapshots/{r.json()['id']}")


def test_an_empty_snapshot_dir_turns_snapshots_off_with_a_clear_409(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    off = start_broker(tmp_path, "--snapshot-dir=", "--pool-size=0", "--no-state", env=broker_env)
    try:
        r = off.request("GET", "/api/snapshots")
        assert r.status_code == 409 and "--snapshot-dir" in r.json()["message"]
    finally:
        off.stop()


# --- the kernel-side helpers, in process ------------------------------------


def test_variables_are_those_who_lists() -> None:
    hidden = {"In": [], "exit": object()}
    user_ns = {**hidden, "_": 1, "_i3": "x", "__name__": "__main__", "a": 1, "exit": 2}
    # a user's own "exit" replaces IPython's and is theirs to keep
    assert snapshot_kernel.user_variables(user_ns, hidden) == {"a": 1, "exit": 2}


@pytest.mark.parametrize("random", [False, True], ids=["repetitive", "random"])
def test_compression_round_trips(random: bool) -> None:
    data = os.urandom(2_000_000) if random else b"abc" * 1_000_000
    kind, packed = snapshot_kernel.compress(data)
    assert bytes(snapshot_kernel.decompress(kind, packed)) == data


def test_incompressible_data_is_stored_as_it_is() -> None:
    if importlib.util.find_spec("lz4") is not None:
        pytest.skip("lz4 is fast enough to use on anything")
    assert snapshot_kernel.compress(os.urandom(2_000_000))[0] == "none"
