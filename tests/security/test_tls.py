"""With --certfile/--keyfile the broker serves HTTPS and WSS only, verified against its cert."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.client import ChannelsConnection

from ..broker_process import RunningBroker, start_broker


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kernel-broker test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.fixture(scope="module")
def tls(tmp_path_factory, broker_env) -> Iterator[tuple[RunningBroker, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    certfile, keyfile = self_signed(tmp)
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
    assert outputs[0].content_dict()["text"] == "over tls\n"
