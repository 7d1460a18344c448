"""Schemathesis fuzzes the REST API from the broker's own OpenAPI document.

Every operation in GET /api/spec.yaml gets generated requests, valid and invalid,
against a live broker with real kernels. The checks: no 5xx, and every answer
conforms to the document (status code, content type, body schema, headers).
The run is bounded: a fixed seed, MAX_EXAMPLES fuzzed requests per operation plus
schemathesis' coverage cases, and ``--max-kernels`` so that bodies valid enough to
start kernels start at most two before the broker answers 429.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis

from ..broker_process import RunningBroker, start_broker

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15
SEED = 20261108
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
)
# Operations whose kernel_id may be swapped for a live kernel's: they must also hold up
# on a real kernel, not only answer 404. DELETE is left out so the kernel survives.
LIVE_KERNEL_OPERATIONS = ("GET", "POST")


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    b = start_broker(tmp_path_factory.mktemp("fuzz"), "--max-kernels=3", env=broker_env)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def live_kernel(fuzz_broker: RunningBroker) -> str:
    return fuzz_broker.start_kernel()


@pytest.fixture(scope="module")
def api_schema(fuzz_broker: RunningBroker) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Executions queue per kernel: on a loaded machine the default 10 s is too short.
            "request-timeout": 60,
            "headers": fuzz_broker.headers(),
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # The websocket is not a REST operation; tests/security/test_ws_fuzz.py fuzzes it.
            "operations": [{"include-path": "/api/kernels/{kernel_id}/channels", "enabled": False}],
        }
    )
    return schemathesis.openapi.from_url(
        fuzz_broker.url + "/api/spec.yaml", config=config, headers=fuzz_broker.headers()
    )


schema = schemathesis.pytest.from_fixture("api_schema")
_coin = random.Random(SEED)


@schema.parametrize()
def test_rest_api_conforms_to_its_openapi_document(
    case: schemathesis.Case,
    fuzz_broker: RunningBroker,
    live_kernel: str,
    figures: Counter[str],
) -> None:
    on_a_kernel = "kernel_id" in (case.path_parameters or {})
    if on_a_kernel and case.method.upper() in LIVE_KERNEL_OPERATIONS and _coin.random() < 0.5:
        case.path_parameters["kernel_id"] = live_kernel
    # A new connection per case: Tornado closes one after refusing an unknown method (TRACE).
    response = case.call()
    figures["rest_cases"] += 1
    figures["rest_5xx"] += response.status_code >= 500
    case.validate_response(response)


def test_the_broker_survives_the_fuzzing(fuzz_broker: RunningBroker, live_kernel: str) -> None:
    """Runs after the fuzz cases: the live kernel still executes code, nothing went unhandled."""
    assert fuzz_broker.stdout(live_kernel, "print(6 * 7)") == "42\n"
    assert isinstance(requests.get(fuzz_broker.url + "/healthz", timeout=10).json(), dict)
    assert "Traceback" not in fuzz_broker.log()
