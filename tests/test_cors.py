"""Pages of other origins: kept out by default, let in by --allow-origin (CORS for REST, the
Origin check for websockets), as Jupyter Server's allow_origin does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker_process import RunningBroker, start_broker

PAGE = "http://page.example:8000"


@pytest.fixture(scope="module")
def allowing_broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    running = start_broker(
        tmp_path_factory.mktemp("cors"), f"--allow-origin={PAGE}", "--pool-size=0", env=broker_env
    )
    yield running
    running.stop()


def preflight(broker: RunningBroker, path: str, origin: str, method: str = "POST"):
    return broker.session.options(
        broker.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=30,
    )


def test_by_default_no_page_of_another_origin_is_let_in(broker: RunningBroker) -> None:
    answer = broker.request("GET", "/api/kernels", headers={"Origin": PAGE})
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = preflight(broker, "/api/kernels", PAGE)
    assert answer.status_code == 204
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Headers" not in answer.headers


def test_a_preflight_from_the_allowed_origin_needs_no_token_and_names_what_it_may_send(
    allowing_broker: RunningBroker,
) -> None:
    answer = preflight(allowing_broker, "/api/kernels", PAGE)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE
    assert set(answer.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    sent = answer.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in sent and "content-type" in sent
    assert "Origin" in answer.headers["Vary"]


def test_answers_to_the_allowed_origin_carry_cors_headers_errors_included(
    allowing_broker: RunningBroker,
) -> None:
    started = allowing_broker.request("POST", "/api/kernels", {}, headers={"Origin": PAGE})
    assert started.status_code == 201
    assert started.headers["Access-Control-Allow-Origin"] == PAGE
    assert "Location" in started.headers["Access-Control-Expose-Headers"]
    allowing_broker.delete_kernel(started.json()["id"])
    refused = allowing_broker.request(
        "GET", "/api/kernels", token="wrong", headers={"Origin": PAGE}
    )
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == PAGE  # the page can read why
    assert refused.json()["reason"]


def test_another_origin_than_the_allowed_one_gets_no_cors_headers(
    allowing_broker: RunningBroker,
) -> None:
    other = "http://elsewhere.example"
    assert (
        "Access-Control-Allow-Origin"
        not in preflight(allowing_broker, "/api/kernels", other).headers
    )
    answer = allowing_broker.request("GET", "/api/kernels", headers={"Origin": other})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_allow_origin_star_lets_any_page_in(tmp_path: Path, broker_env: dict[str, str]) -> None:
    star = start_broker(tmp_path, "--allow-origin=*", "--pool-size=0", env=broker_env)
    try:
        answer = star.request("GET", "/api/kernelspecs", headers={"Origin": "http://any.example"})
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Vary" not in answer.headers
    finally:
        star.stop()
