"""Schemathesis, run from outside as its CLI, over the broker's own GET /api/spec.yaml.

The broker is a real process with real kernels; the schemathesis command is another
process that knows only the document's URL and a token, as an outside tester would. Its
coverage and fuzzing phases send valid and invalid requests to every operation (the
execute operations on a live kernel, so that generated code really runs); the run fails
on any finding: a 5xx, an operation that answers without the token, or an answer that
does not match the document (status, content type, schema, headers, ``Allow``, invalid
data accepted). Every request must also end within ``REQUEST_TIMEOUT``: the document
promises that an execution ends at most its timeout plus 15 s after it was submitted,
and this broker's maximum timeout is ``MAX_TIMEOUT``.

Bounded: a fixed seed, ``MAX_EXAMPLES`` fuzzed requests per operation plus the coverage
cases, and ``--max-kernels`` so that bodies valid enough to start kernels start few.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ..broker_process import RunningBroker
from .conftest import module_broker

MAX_EXAMPLES = 10
SEED = 20261203
MAX_TIMEOUT = 5  # the broker's --ExecutionLimits.max_timeout in this test
REQUEST_TIMEOUT = MAX_TIMEOUT + 15 + 20  # the documented bound, and room for a loaded machine
CHECKS = (
    "not_a_server_error",
    "ignored_auth",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
)
# Operations that get the live kernel's id, so that generated code runs in a real kernel
# and generated files are written, read and deleted in one.
# DELETE /api/kernels/{kernel_id} keeps generated ids: the kernel must survive the run.
LIVE_KERNEL_OPERATIONS = (
    "POST /api/kernels/{kernel_id}/execute",
    "GET /api/kernels/{kernel_id}/executions",
    "GET /api/kernels/{kernel_id}/executions/{exec_id}",
    "DELETE /api/kernels/{kernel_id}/executions/{exec_id}",
    "GET /api/kernels/{kernel_id}/files",
    "POST /api/kernels/{kernel_id}/files",
    "GET /api/kernels/{kernel_id}/files/{path}",
    "PUT /api/kernels/{kernel_id}/files/{path}",
    "POST /api/kernels/{kernel_id}/files/{path}",
    "DELETE /api/kernels/{kernel_id}/files/{path}",
)


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    yield from module_broker(
        tmp_path_factory,
        broker_env,
        "schemathesis",
        "--max-kernels=3",
        "--ExecutionLimits.default_timeout=2",
        f"--ExecutionLimits.max_timeout={MAX_TIMEOUT}",
    )


@pytest.fixture(scope="module")
def live_kernel(fuzz_broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The kernel generated requests run in; the files they write go to a directory of its
    own."""
    workdir = tmp_path_factory.mktemp("fuzzed-files")
    return fuzz_broker.start_kernel(KERNEL_WORKING_DIR=str(workdir))


def config_file(directory: Path, kernel_id: str) -> Path:
    """schemathesis.toml: the live kernel's id for the execute operations."""
    path = directory / "schemathesis.toml"
    entry = '[[operations]]\ninclude-name = "{}"\nparameters = {{ kernel_id = "{}" }}\n'
    path.write_text("".join(entry.format(name, kernel_id) for name in LIVE_KERNEL_OPERATIONS))
    return path


@pytest.mark.slow
def test_schemathesis_finds_nothing_in_the_rest_api(
    fuzz_broker: RunningBroker, live_kernel: str, tmp_path: Path, figures: Counter[str]
) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    command = [
        str(schemathesis),
        "--config-file",
        str(config_file(tmp_path, live_kernel)),
        "--no-color",
        "run",
        fuzz_broker.url + "/api/spec.yaml",
        "--header",
        f"Authorization: token {fuzz_broker.token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        # The websocket is not a REST operation; test_ws_fuzz.py fuzzes it.
        "--exclude-path",
        "/api/kernels/{kernel_id}/channels",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    cases = re.search(r"(\d+) generated", run.stdout)
    figures["rest_cases"] += int(cases.group(1)) if cases else 0
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


def test_the_broker_survives_the_fuzzing(fuzz_broker: RunningBroker, live_kernel: str) -> None:
    """Runs after the fuzzing: the live kernel still executes code, nothing went unhandled."""
    assert fuzz_broker.stdout(live_kernel, "print(6 * 7)") == "42\n"
    assert isinstance(requests.get(fuzz_broker.url + "/healthz", timeout=10).json(), dict)
    assert "Traceback" not in fuzz_broker.log()
