"""The REST API as Jupyter Server and Enterprise Gateway clients use it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from .broker_process import RunningBroker

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_api_answers_version_without_a_token(broker: RunningBroker) -> None:
    r = broker.request("GET", "/api", token="")
    assert r.status_code == 200 and "version" in r.json()


def test_status_counts_kernels(broker: RunningBroker, kernel: str) -> None:
    doc = broker.request("GET", "/api/status").json()
    assert doc["kernels"] >= 1 and TIME_FORMAT.match(doc["started"])


def test_kernelspecs_have_resources_and_a_default(broker: RunningBroker) -> None:
    doc = broker.request("GET", "/api/kernelspecs").json()
    assert doc["default"] == "python3"
    for name, spec in doc["kernelspecs"].items():
        assert spec["name"] == name and "resources" in spec and "argv" in spec["spec"]


def test_kernelspecs_filtered_by_user_query(broker: RunningBroker) -> None:
    bob = broker.request("GET", "/api/kernelspecs?user=bob").json()["kernelspecs"]
    alice = broker.request("GET", "/api/kernelspecs?user=alice").json()["kernelspecs"]
    assert "only-alice" in alice and "eg-no-bob" in alice
    assert "only-alice" not in bob and "eg-no-bob" not in bob


def test_one_kernelspec_and_its_logo(broker: RunningBroker) -> None:
    spec = broker.request("GET", "/api/kernelspecs/only-alice").json()
    logo = spec["resources"]["logo-64x64"]
    r = broker.request("GET", logo)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def test_kernelspec_resource_cannot_escape_its_directory(broker: RunningBroker) -> None:
    r = broker.request("GET", "/kernelspecs/only-alice/..%2F..%2Fkernel.json")
    assert r.status_code == 404


def test_unknown_kernelspec_is_404_json(broker: RunningBroker) -> None:
    r = broker.request("GET", "/api/kernelspecs/nope")
    assert r.status_code == 404 and set(r.json()) == {"reason", "message"}


def test_start_returns_201_location_and_model(broker: RunningBroker) -> None:
    r = broker.request("POST", "/api/kernels", {"name": "python3"})
    try:
        assert r.status_code == 201
        model = r.json()
        assert r.headers["Location"] == f"/api/kernels/{model['id']}"
        uuid.UUID(model["id"])
        assert model["name"] == "python3" and isinstance(model["connections"], int)
        assert model["execution_state"] in ("idle", "starting", "busy")
        assert TIME_FORMAT.match(model["last_activity"])
    finally:
        broker.delete_kernel(r.json()["id"])


def test_start_without_body_uses_default_spec(broker: RunningBroker) -> None:
    r = broker.request("POST", "/api/kernels")
    assert r.status_code == 201, r.text
    broker.delete_kernel(r.json()["id"])


def test_list_get_and_delete(broker: RunningBroker, kernel: str) -> None:
    assert kernel in [k["id"] for k in broker.request("GET", "/api/kernels").json()]
    assert broker.request("GET", f"/api/kernels/{kernel}").json()["id"] == kernel
    assert broker.request("DELETE", f"/api/kernels/{kernel}").status_code == 204
    assert broker.request("GET", f"/api/kernels/{kernel}").status_code == 404
    assert broker.request("DELETE", f"/api/kernels/{kernel}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/kernels", {"name": "no-such-spec"}, 404),
        ("POST", "/api/kernels", {"name": 5}, 400),
        ("POST", "/api/kernels", {"env": "x"}, 400),
        ("POST", "/api/kernels", {"env": {"KERNEL_X": 1}}, 400),
        ("POST", "/api/kernels", {"env": {"KERNEL_X": "a\x00b"}}, 400),
        ("POST", "/api/kernels", {"env": {"SECRET": "x"}}, 403),
        ("POST", "/api/kernels", {"env": {"KERNEL_LAUNCH_TIMEOUT": "soon"}}, 400),
        ("POST", "/api/kernels", {"env": {"KERNEL_WORKING_DIR": "/no/such/dir"}}, 400),
        ("POST", "/api/kernels", [1, 2], 400),
        ("GET", "/api/kernels/not-a-kernel", None, 404),
        ("POST", "/api/kernels/not-a-kernel/interrupt", None, 404),
        ("POST", "/api/kernels/not-a-kernel/restart", None, 404),
        ("GET", "/api/nothing-here", None, 404),
        ("PUT", "/api/kernels", None, 405),
    ],
)
def test_bad_requests_get_json_errors(broker, method, path, body, status) -> None:
    r = broker.request(method, path, body)
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"reason", "message"} and doc["message"]


def test_malformed_json_is_400(broker: RunningBroker) -> None:
    r = broker.request("POST", "/api/kernels", data="{not json")
    assert r.status_code == 400 and "JSON" in r.json()["message"]


def test_oversized_body_is_413(broker: RunningBroker) -> None:
    r = broker.request("POST", "/api/kernels", data="x" * (5 * 1024 * 1024))
    assert r.status_code == 413


def test_health_and_readiness_need_no_token(broker: RunningBroker) -> None:
    assert broker.request("GET", "/healthz", token="").status_code == 200
    assert broker.request("GET", "/readyz", token="").json() == {"status": "ready"}


def test_metrics_in_prometheus_format(broker: RunningBroker, kernel: str) -> None:
    text = broker.request("GET", "/metrics").text
    assert "# TYPE broker_kernels_total gauge" in text
    assert 'broker_kernel_starts_total{outcome="ok"}' in text
    assert "broker_kernel_start_seconds_count" in text


def test_spec_yaml_lists_every_route(broker: RunningBroker) -> None:
    import yaml

    from broker.routes import routes

    doc = yaml.safe_load(broker.request("GET", "/api/spec.yaml").text)
    assert doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    for pattern, _ in routes():
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).replace("\\", "")
        path = path.rstrip("?").rstrip("/") or "/"
        assert path in documented, f"{path} missing from spec.yaml"


def test_spec_yaml_documents_every_query_parameter_a_handler_reads(broker: RunningBroker) -> None:
    import yaml

    from broker import handlers

    doc = yaml.safe_load(broker.request("GET", "/api/spec.yaml").text)
    documented = set()
    for item in doc["paths"].values():
        for where in [item, *(op for op in item.values() if isinstance(op, dict))]:
            documented |= {p["name"] for p in where.get("parameters", []) if p["in"] == "query"}
    read = set()
    for source in Path(handlers.__file__).parent.glob("*.py"):
        read |= set(re.findall(r"get_(?:query_)?argument\(\s*\"(\w+)\"", source.read_text()))
    assert read and read <= documented, f"undocumented: {read - documented}"


def test_interrupt_and_restart_answer_as_jupyter_server(broker: RunningBroker, kernel: str) -> None:
    assert broker.request("POST", f"/api/kernels/{kernel}/interrupt").status_code == 204
    r = broker.request("POST", f"/api/kernels/{kernel}/restart")
    assert r.status_code == 200 and r.json()["id"] == kernel
