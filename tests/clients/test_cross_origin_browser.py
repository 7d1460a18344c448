"""A page of another origin in headless Chromium: the browser's own CORS and websocket origin
rules keep it out of a default broker and let it run code on one with --allow-origin."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..broker_process import RunningBroker, start_broker
from ..browser import chromium, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Runs in the page: start a kernel over REST, open its channels, print, return what happened.
USE_BROKER = """
async ([url, token]) => {
  const result = {};
  try {
    const started = await fetch(url + "/api/kernels", {
      method: "POST", headers: {Authorization: "token " + token}, body: "{}"});
    result.status = started.status;
    result.kernel = (await started.json()).id;
  } catch (e) {
    result.fetchError = String(e);
    return result;
  }
  const ws = new WebSocket(url.replace("http", "ws") + "/api/kernels/" + result.kernel +
                           "/channels?token=" + token);
  result.printed = await new Promise((resolve) => {
    ws.onerror = () => resolve("websocket refused");
    ws.onopen = () => ws.send(JSON.stringify({
      header: {msg_id: "m1", msg_type: "execute_request", session: "s1", username: "page",
               version: "5.3", date: new Date().toISOString()},
      parent_header: {}, metadata: {}, channel: "shell",
      content: {code: "print('hello from another origin')", silent: false}}));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.msg_type === "stream") resolve(msg.content.text);
    };
  });
  ws.close();
  return result;
}
"""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving an empty page: an origin other than the broker's."""
    need_chromium()
    (tmp_path / "index.html").write_text("<!doctype html><title>another origin</title>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_in_page(origin: str, broker: RunningBroker) -> dict:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(origin + "/index.html")
        return page.evaluate(USE_BROKER, [broker.url, broker.token])


def test_a_page_of_another_origin_cannot_use_a_default_broker(
    page_origin: str, broker: RunningBroker
) -> None:
    before = broker.request("GET", "/api/kernels").json()
    result = run_in_page(page_origin, broker)
    assert "fetchError" in result, result
    # The Authorization header made the browser ask first (a preflight); the broker's answer
    # named no origin, so the POST was never sent: no kernel was started.
    assert broker.request("GET", "/api/kernels").json() == before


def test_a_page_of_the_allowed_origin_runs_code_over_rest_and_websocket(
    page_origin: str, tmp_path: Path, broker_env: dict[str, str]
) -> None:
    allowing = start_broker(tmp_path, f"--allow-origin={page_origin}", env=broker_env)
    try:
        result = run_in_page(page_origin, allowing)
        assert result.get("status") == 201, result
        assert result["printed"] == "hello from another origin\n"
        allowing.delete_kernel(result["kernel"])
    finally:
        allowing.stop()
