"""The chat page of `llm-agent serve` in headless Debian Chromium, used as a person does:
a real `llm-agent serve` process, a real broker with real kernels, the scripted model.

Each test is a whole flow. The first one also takes the screenshot shown in
docs/agent.md: it is saved as test-artifacts/chat-page.png, and copied to
docs/images/chat-page.png when KB_UPDATE_SCREENSHOTS=1 is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..broker_process import RunningBroker, start_broker
from ..browser import ARTIFACTS, chromium, failure_artifacts, need_chromium
from .agent_process import ROOT, SERVE_TOKEN, serve_command, serving
from .scripted_llm import ScriptedLLM, Turn, python, tool_messages

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000
WIDE = {"width": 1280, "height": 860}
NARROW = {"width": 390, "height": 844}  # a phone
SCREENSHOT = {"width": 1280, "height": 1180}
DATA = "city,value\nOslo,42\nLima,17\nPune,23\nBonn,8\n"
ANALYSIS = """\
import pandas as pd
import matplotlib.pyplot as plt

df = pd.read_csv("data.csv")
print(f"{len(df)} rows, columns: {', '.join(df.columns)}")
display(df)
df.plot.bar(x="city", y="value", legend=False, title="Value by city", figsize=(6, 3))
plt.tight_layout()
plt.savefig("values.png")
plt.show()"""
ANSWER = (
    "**Oslo** has the highest value, 42, well ahead of Pune (23). The bar chart shows "
    "every city; I saved it as `values.png`."
)
# Images in the other two formats; HTML whose table must show and whose script and event
# handler must never run; an error.
ODD = """\
import io
from PIL import Image as Picture
from IPython.display import HTML, SVG, Image, display
jpeg = io.BytesIO()
Picture.new("RGB", (40, 20), "teal").save(jpeg, "JPEG")
display(Image(data=jpeg.getvalue(), format="jpeg"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
            '<rect width="40" height="20" fill="teal"/></svg>'))
display(HTML('<table><tr><td>safe cell</td></tr></table>'
             '<img src="x" onerror="window.pwned = 1"><script>window.pwned = 2</script>'))
1 / 0"""
RECORD_ANSWER = """() => {
    window.seen = [];
    new MutationObserver(() => {
        const texts = document.querySelectorAll('[role=log] .assistant .md');
        if (texts.length) window.seen.push(texts[texts.length - 1].textContent);
    }).observe(document.querySelector('[role=log]'),
               {subtree: true, childList: true, characterData: true});
}"""
RECORD_PROGRESS = """() => {
    window.progress = [];
    new MutationObserver((changes) => {
        for (const c of changes) {
            const bars = c.type === 'attributes' ? [c.target] : [...c.addedNodes]
                .flatMap((n) => n.querySelectorAll ? [...n.querySelectorAll('progress')] : []);
            for (const bar of bars) {
                if (bar.tagName === 'PROGRESS') window.progress.push(
                    [bar.getAttribute('aria-label'), bar.value, bar.max]);
            }
        }
    }).observe(document.getElementById('uploads'),
               {subtree: true, childList: true, attributes: true});
}"""


@dataclass
class Served:
    url: str
    log: Path

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def page_broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    """A broker of these tests' own: its kernels' working directory holds only their files."""
    need_chromium()
    running = start_broker(tmp_path_factory.mktemp("page-broker"), env=broker_env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page_llm() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def script_played_out(page_llm: ScriptedLLM) -> Iterator[None]:
    """Each test's turns are all requested, and every check passed."""
    yield
    assert not page_llm.errors, "\n".join(page_llm.errors)
    assert not page_llm.script, f"{len(page_llm.script)} scripted turns were never requested"


@contextlib.contextmanager
def serve(
    tmp: Path, llm: ScriptedLLM, broker_url: str, broker_token: str, *args: str
) -> Iterator[Served]:
    """``llm-agent serve`` for a test, its stderr logged in ``tmp``."""
    log = tmp / f"serve-{len(list(tmp.glob('serve-*.log')))}.log"
    command = serve_command(llm, broker_url, broker_token, "--max-retries", "0", *args)
    with serving(command, tmp, log) as url:
        yield Served(url, log)


@pytest.fixture(scope="module")
def agent(
    page_broker: RunningBroker, page_llm: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`llm-agent serve` with a live broker and model, shared by the tests that need both."""
    tmp = tmp_path_factory.mktemp("serve")
    with serve(tmp, page_llm, page_broker.url, page_broker.token) as served:
        yield served


@contextlib.contextmanager
def opened(served: Served, name: str, viewport: dict[str, int]) -> Iterator[Any]:
    """A fresh browser profile on the page; screenshot and server log kept on failure."""
    with chromium() as browser:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        with failure_artifacts(page, name, served.read_log):
            page.goto(served.url + "/")
            yield page


def connect(page: Any, token: str = SERVE_TOKEN) -> None:
    """Answer the token dialog as a person does."""
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Connect").click()


def downloaded(page: Any, button: Any) -> bytes:
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def drop_file(page: Any, name: str, text: str) -> None:
    """Drag a file from the desktop and drop it on the conversation."""
    transfer = page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: 'text/plain'}));
            return transfer;
        }""",
        [name, text],
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event("[role=log]", event, {"dataTransfer": transfer})


def save_screenshot(page: Any) -> None:
    """The picture in docs/agent.md (copied there with KB_UPDATE_SCREENSHOTS=1): the
    whole conversation, on a screen tall enough to hold it."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "chat-page.png"
    page.set_viewport_size(SCREENSHOT)
    page.get_by_role("log").evaluate("(log) => { log.scrollTop = 0; }")
    page.screenshot(path=str(shot))
    page.set_viewport_size(WIDE)
    if os.environ.get("KB_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, ROOT / "docs" / "images" / "chat-page.png")


def expect_text(locator: Any, text: str) -> None:
    """Wait until ``locator`` shows ``text``."""
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=TIMEOUT_MS)


def expect_focused(locator: Any) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_focused(timeout=TIMEOUT_MS)


def expect_enabled(locator: Any) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_enabled(timeout=TIMEOUT_MS)


def told_of_uploads(body: dict[str, Any]) -> None:
    question = body["messages"][-1]["content"]
    assert "data.csv (" in question and "notes.txt (" in question, question


def told(fragment: str) -> Callable[[dict[str, Any]], None]:
    """A check that the code's output the model received holds ``fragment``."""

    def check(body: dict[str, Any]) -> None:
        assert fragment in "\n".join(tool_messages(body))

    return check


def test_a_person_uploads_data_asks_and_sees_the_code_its_output_a_table_and_a_plot(
    agent: Served, page_llm: ScriptedLLM, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text(DATA)
    page_llm.add(
        Turn(content="Let me look at the data.", tool_calls=[python(ANALYSIS)],
             check=told_of_uploads),
        Turn(content=ANSWER, pause=0.03, check=told("4 rows, columns: city, value")),
        Turn(tool_calls=[python(ODD)]),
        Turn(content="That division failed.", check=told("ZeroDivisionError")),
    )  # fmt: skip
    with opened(agent, "chat-page", WIDE) as page:
        expect_text(page.get_by_role("dialog"), "needs its token")
        connect(page)
        expect_text(page.get_by_role("status"), "Broker: reachable · Model server: reachable")

        page.evaluate(RECORD_PROGRESS)
        page.get_by_label("Upload").set_input_files(str(data))
        page.get_by_role("button", name="Download data.csv").wait_for()
        label, sent, total = page.evaluate("window.progress")[-1]
        assert (label, sent, total) == ("Uploading data.csv", len(DATA), len(DATA))
        drop_file(page, "notes.txt", "measured in May")
        page.get_by_role("button", name="Download notes.txt").wait_for()

        page.evaluate(RECORD_ANSWER)
        message = page.get_by_role("textbox", name="Message")
        message.fill("Which city has the highest value? Plot the values.")
        message.press("Enter")

        run = page.get_by_role("region", name="Code run 1")
        expect_text(run, "4 rows, columns: city, value")
        assert run.locator(".tok-kw", has_text="import").count() == 2  # highlighted
        expect_text(run.get_by_role("table"), "Oslo")
        plot = page.get_by_role("img", name=re.compile(r"^Image produced by code run 1"))
        assert plot.get_attribute("src").startswith("data:image/png;base64,")
        assert page.evaluate("(img) => img.naturalWidth", plot.element_handle()) > 100
        log = page.get_by_role("log", name="Conversation")
        expect_text(log, "well ahead of Pune (23)")
        seen = page.evaluate("window.seen")
        final = log.locator(".assistant .md").last.text_content()
        assert any(0 < len(text) < len(final) and final.startswith(text) for text in seen)

        expect_enabled(page.get_by_role("button", name="Send"))  # ready for the next question
        png = downloaded(page, page.get_by_role("button", name="Download values.png"))
        assert png.startswith(b"\x89PNG")
        save_screenshot(page)
        notebook = nbformat.reads(
            downloaded(page, page.get_by_role("button", name="Download notebook")).decode(), 4
        )
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code[0].source == ANALYSIS
        assert any("image/png" in o.get("data", {}) for o in code[0].outputs)

        page.get_by_role("button", name="New conversation").click()
        assert log.locator(".turn").count() == 0
        message.fill("Show me something odd")
        message.press("Enter")
        odd = page.get_by_role("region", name="Code run 1")
        expect_text(odd.locator(".error-output"), "ZeroDivisionError")
        assert "Traceback" in odd.locator(".error-output").text_content()
        expect_text(odd.get_by_role("table"), "safe cell")
        expect_text(log, "That division failed.")
        assert page.evaluate("window.pwned") is None
        assert odd.locator(".html-output img, .html-output script").count() == 0
        images = odd.get_by_role("img", name=re.compile(r"^Image produced by code run 1"))
        sources = [images.nth(i).get_attribute("src") for i in range(images.count())]
        assert [src.split(";")[0] for src in sources] == ["data:image/jpeg", "data:image/svg+xml"]
        for i in range(2):
            assert page.evaluate("(img) => img.naturalWidth", images.nth(i).element_handle()) == 40

        first = page.get_by_role(
            "button", name="Which city has the highest value? Plot the values."
        )
        first.click()
        expect_text(page.get_by_role("region", name="Code run 1").get_by_role("table"), "Oslo")
        page.get_by_role("img", name=re.compile(r"^Image produced by code run 1")).wait_for()
        expect_text(log, "well ahead of Pune (23)")

        fetched = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
        assert any("/files/" in url for url in fetched)
        assert not any(SERVE_TOKEN in url for url in [page.url, *fetched])
        assert SERVE_TOKEN not in agent.read_log()

        page.reload()  # the token is kept for the tab: no dialog, the same conversation
        expect_text(log, "well ahead of Pune (23)")
        assert not page.get_by_role("dialog").is_visible()
        listed = page.get_by_role("region", name="Conversations").get_by_role("listitem")
        assert listed.count() == 2


TICKING = """\
import time
for i in range(600):
    print(f"tick {i}", flush=True)
    time.sleep(0.1)"""


def test_a_long_run_is_interrupted_with_the_keyboard_alone_on_a_narrow_screen(
    agent: Served, page_llm: ScriptedLLM
) -> None:
    page_llm.add(
        Turn(tool_calls=[python(TICKING)]),
        Turn(content="Stopped at your request.", check=told("KeyboardInterrupt")),
    )
    with opened(agent, "chat-page-interrupt", NARROW) as page:
        page.get_by_label("Token").wait_for()
        page.keyboard.type(SERVE_TOKEN)  # the dialog's field has the focus
        page.keyboard.press("Enter")
        message = page.get_by_role("textbox", name="Message")
        expect_focused(message)
        page.keyboard.type("Count slowly")
        page.keyboard.press("Enter")

        run = page.get_by_role("region", name="Code run 1")
        expect_text(run, "tick 3")  # printed output shows while the code runs
        page.keyboard.press("Tab")  # Send is disabled while answering: next is Interrupt
        interrupt = page.get_by_role("button", name="Interrupt")
        expect_focused(interrupt)
        page.keyboard.press("Enter")
        expect_text(run.locator(".error-output"), "KeyboardInterrupt")
        expect_text(run, "failed")
        expect_text(page.get_by_role("log"), "Stopped at your request.")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        toggle = page.get_by_role("button", name="Chats and files")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not page.get_by_role("region", name="Files").is_visible()
        toggle.focus()
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true"
        expect_text(page.get_by_role("region", name="Conversations"), "Count slowly")


def test_a_wrong_token_and_a_model_server_that_is_down_are_said_plainly(
    page_broker: RunningBroker, page_llm: ScriptedLLM, tmp_path: Path
) -> None:
    dead_model = ScriptedLLM()
    dead_model.url = "http://127.0.0.1:1"  # never started: nothing listens there
    with (
        serve(tmp_path, dead_model, page_broker.url, page_broker.token) as served,
        opened(served, "chat-page-model-down", WIDE) as page,
    ):
        connect(page, "not-the-token")
        expect_text(page.get_by_role("dialog"), "The server refused this token")
        connect(page)
        problems = page.get_by_role("alert").filter(has_text="Model server down")
        expect_text(problems, "cannot reach the model server at http://127.0.0.1:1/v1")
        expect_text(page.get_by_role("status"), "Broker: reachable · Model server: down")
        message = page.get_by_role("textbox", name="Message")
        message.fill("Hello?")
        message.press("Enter")
        expect_text(page.get_by_role("log"), "The answer failed: cannot reach the model server")
        expect_enabled(page.get_by_role("button", name="Send"))


def test_a_broker_that_is_down_is_named_and_an_upload_says_why_it_failed(
    page_llm: ScriptedLLM, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text(DATA)
    with (
        serve(tmp_path, page_llm, "http://127.0.0.1:1", "none") as served,
        opened(served, "chat-page-broker-down", WIDE) as page,
    ):
        connect(page)
        alert = page.get_by_role("alert").filter(has_text="Broker down")
        expect_text(alert, "cannot reach the broker at http://127.0.0.1:1")
        page.get_by_label("Upload").set_input_files(str(data))
        expect_text(page.locator("#problems"), "connection refused")
        assert page.get_by_role("button", name="Download data.csv").count() == 0
