"""With --certfile/--keyfile the broker serves HTTPS and WSS only, verified against its cert."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from broker.client import ChannelsConnection, stream_text

from ..broker_process import RunningBroker, start_broker
from ..certificates import self_signed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls(tmp_path_factory, broker_env) -> Iterator[tuple[RunningBroker, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    certfile, keyfile = tmp / "cert.pem", tmp / "key.pem"
    self_signed(certfile, keyfile)
    b = start_broker(tmp, f"--certfile={certfile}", f"--keyfile={keyfile}", env=broker_env)
    yield b, certfile
    b.stop()


def test_https_is_verified_against_the_certificate(tls: tuple[RunningBroker, Path]) -> None:
    b, certfile = tls
    assert b.url.startswith("https://127.0.0.1:")
    assert b.request("GET", "/api/status", verify=str(certfile)).status_code == 200


def test_an_unverifiable_client_is_refused(tls: tuple[RunningBroker, Path]) -> None:
    b, _ = tls
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(b.url + "/api", timeout=30, verify=True)  # unknown to the system CAs


def test_plain_http_on_the_tls_port_gets_no_answer(tls: tuple[RunningBroker, Path]) -> None:
    b, _ = tls
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("http" + b.url[5:] + "/api", timeout=30)


async def test_wss_executes_code(tls: tuple[RunningBroker, Path]) -> None:
    b, certfile = tls
    kernel = b.request("POST", "/api/kernels", {}, verify=str(certfile)).json()["id"]
    context = ssl.create_default_context(cafile=str(certfile))
    async with await ChannelsConnection.connect(b.url, kernel, b.token, ssl=context) as conn:
        reply, outputs = await conn.execute("print('over tls')")
    b.request("DELETE", f"/api/kernels/{kernel}", verify=str(certfile))
    assert reply.content_dict()["status"] == "ok"
    assert stream_text(outputs) == "over tls\n"
