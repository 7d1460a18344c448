"""Enterprise Gateway's kernelspec user lists: comma-separated strings, as EG documents them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.auth import user_names

from .broker_process import RunningBroker, start_users_broker

pytestmark = pytest.mark.slow  # a broker of its own

# The process_proxy stanza of EG's system-architecture documentation, unchanged; the argv
# is a local ipykernel so that an authorized start can run here.
EG_STANZA = {
    "process_proxy": {
        "class_name": (
            "enterprise_gateway.services.processproxies.distributed.DistributedProcessProxy"
        ),
        "config": {
            "remote_hosts": "priv_host1,priv_host2",
            "port_range": "40000..41000",
            "authorized_users": "bob,alice",
        },
    }
}
USERS = {
    "users": [
        {"name": name, "token": f"{name}-token", "admin": name == "root"}
        for name in ("alice", "bob", "carol", "root")
    ]
}


def write_spec(root: Path, name: str, metadata: dict) -> None:
    spec_dir = root / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": metadata,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def eg_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    tmp = tmp_path_factory.mktemp("eg-users")
    write_spec(tmp, "eg-bob-alice", EG_STANZA)
    write_spec(
        tmp,
        "eg-broken-list",
        {"process_proxy": {"class_name": "x", "config": {"authorized_users": 7}}},
    )
    running = start_users_broker(
        tmp, USERS, "root-token", env={"JUPYTER_PATH": str(tmp), "HOME": str(tmp)}
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("bob,alice", {"bob", "alice"}),
        (" bob , alice ,", {"bob", "alice"}),
        ("alice", {"alice"}),
        ("", set()),
        (["bob", " alice"], {"bob", "alice"}),
        (None, set()),
    ],
)
def test_user_lists_are_strings_or_lists(value: object, names: set[str]) -> None:
    assert user_names(value, "authorized_users") == names


@pytest.mark.parametrize("value", [7, {"bob": True}, ["bob", 3], True])
def test_unreadable_user_list_is_an_error_not_an_empty_list(value: object) -> None:
    with pytest.raises(ValueError, match="authorized_users"):
        user_names(value, "authorized_users")


def test_listed_user_starts_a_kernel_of_an_eg_spec(eg_broker: RunningBroker) -> None:
    kernel = eg_broker.start_kernel("eg-bob-alice", token="alice-token")
    eg_broker.delete_kernel(kernel, token="alice-token")


def test_unlisted_user_is_refused_an_eg_spec(eg_broker: RunningBroker) -> None:
    r = eg_broker.request("POST", "/api/kernels", {"name": "eg-bob-alice"}, token="carol-token")
    assert r.status_code == 403, r.text
    assert "not authorized" in r.json()["message"]


def test_eg_spec_is_listed_for_its_users_only(eg_broker: RunningBroker) -> None:
    for token, listed in (("bob-token", True), ("carol-token", False)):
        specs = eg_broker.request("GET", "/api/kernelspecs", token=token).json()["kernelspecs"]
        assert ("eg-bob-alice" in specs) is listed
    as_admin = eg_broker.request("GET", "/api/kernelspecs?user=alice").json()["kernelspecs"]
    assert "eg-bob-alice" in as_admin


def test_spec_with_an_unreadable_user_list_is_hidden_and_says_why(
    eg_broker: RunningBroker,
) -> None:
    specs = eg_broker.request("GET", "/api/kernelspecs", token="bob-token").json()["kernelspecs"]
    assert "eg-broken-list" not in specs
    r = eg_broker.request("POST", "/api/kernels", {"name": "eg-broken-list"})
    assert r.status_code == 500, r.text
    assert "authorized_users" in r.json()["message"]
