"""The origin policy as a pure function, fed the exact headers websocket-client sends."""

from __future__ import annotations

import pytest
from websocket._handshake import _get_handshake_headers
from websocket._url import parse_url

from broker.origin import origin_allowed, same_origin


def websocket_client_headers(url: str) -> dict[str, str]:
    """The Host and Origin headers websocket-client builds for ``url`` by default."""
    host, port, resource, _ = parse_url(url)
    lines, _ = _get_handshake_headers(resource, url, host, port, {})
    return dict(line.split(": ", 1) for line in lines[1:] if ": " in line)


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8889/api/kernels/k/channels",
        "ws://localhost:8889/api/kernels/k/channels",
        "ws://Broker.Example.ORG/api/kernels/k/channels",
        "wss://broker.example.org/api/kernels/k/channels",
        "wss://broker.example.org:8443/api/kernels/k/channels",
        "ws://[::1]:8889/api/kernels/k/channels",
        "wss://[2001:db8::1]/api/kernels/k/channels",
    ],
)
def test_websocket_client_default_origin_is_accepted(url: str) -> None:
    headers = websocket_client_headers(url)
    assert "Origin" in headers
    assert origin_allowed(headers, "")


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://broker.example.org", "broker.example.org"),  # behind a proxy ending TLS
        ("https://broker.example.org", "broker.example.org:443"),
        ("http://broker.example.org:80", "broker.example.org"),
        ("HTTP://BROKER.example.org:8889", "broker.EXAMPLE.org:8889"),
        ("http://[::1]:8889", "[::1]:8889"),
    ],
)
def test_same_host_and_port_is_the_same_origin(origin: str, host: str) -> None:
    assert same_origin(origin, host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://evil.example", "broker.example.org"),
        ("http://localhost:3000", "localhost:8889"),
        ("https://broker.example.org", "broker.example.org:8889"),
        ("http://broker.example.org.evil.example", "broker.example.org"),
        ("null", "broker.example.org"),
        ("file://", "broker.example.org"),
        ("http://[::1", "[::1]:8889"),
        ("http://user@broker.example.org", "broker.example.org"),
        ("http://broker.example.org", ""),
    ],
)
def test_other_hosts_and_ports_are_foreign(origin: str, host: str) -> None:
    assert not same_origin(origin, host)


def test_a_browser_saying_same_origin_is_believed() -> None:
    # A proxy may rewrite Host; a page cannot set Sec-Fetch-Site.
    headers = {"Origin": "https://lab.example.org", "Host": "broker:8888"}
    assert origin_allowed({**headers, "Sec-Fetch-Site": "same-origin"}, "")
    assert not origin_allowed({**headers, "Sec-Fetch-Site": "cross-site"}, "")


def test_a_browser_saying_cross_site_is_refused_even_when_host_matches() -> None:
    headers = {
        "Origin": "http://broker:8888",
        "Host": "broker:8888",
        "Sec-Fetch-Site": "cross-site",
    }
    assert not origin_allowed(headers, "")


def test_allow_origin_admits_one_origin_or_any() -> None:
    headers = {"Origin": "https://lab.example.org", "Host": "broker:8888"}
    assert origin_allowed(headers, "https://lab.example.org/")
    assert origin_allowed(headers, "*")
    assert not origin_allowed(headers, "https://other.example.org")


def test_no_origin_is_a_non_browser_client() -> None:
    assert origin_allowed({"Host": "broker:8888"}, "")
