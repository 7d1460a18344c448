"""Every language through the broker: kernelspecs and logos, execute over HTTP and both
websocket protocols, errors, rich display, interrupt and restart."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest

from broker.client import ChannelsConnection
from broker.client.channels import stream_text

from ..broker_process import RunningBroker, start_broker
from .conftest import ALL, Language, R

pytestmark = [pytest.mark.slow, pytest.mark.languages]


@pytest.mark.parametrize("language", ALL)
def test_kernelspec_is_listed_with_its_logo(
    languages_broker: RunningBroker, language: Language
) -> None:
    specs = languages_broker.request("GET", "/api/kernelspecs").json()["kernelspecs"]
    model = specs[language.kernelspec]
    assert model["spec"]["language"].lower() == language.language.lower()
    logo = model["resources"]["logo-svg"]
    r = languages_broker.request("GET", logo)
    assert r.status_code == 200 and b"<svg" in r.content


@pytest.mark.parametrize("language", ALL)
def test_execute_endpoint_streams_stdout(
    languages_broker: RunningBroker, lang_kernel: str, language: Language
) -> None:
    assert languages_broker.stdout(lang_kernel, language.hello) == "hello 42\n"


@pytest.mark.parametrize("language", ALL)
def test_execute_endpoint_reports_the_error(
    languages_broker: RunningBroker, lang_kernel: str, language: Language
) -> None:
    events = languages_broker.execute(lang_kernel, language.fail)
    (error,) = [e for e in events if e["type"] == "error"]
    assert language.error_value in error["value"]
    assert events[-1]["type"] == "end" and events[-1]["status"] == "error"


@pytest.mark.parametrize("language", ALL)
def test_execute_endpoint_carries_rich_display(
    languages_broker: RunningBroker, lang_kernel: str, language: Language
) -> None:
    events = languages_broker.execute(lang_kernel, language.display)
    data = [e["data"] for e in events if e["type"] in ("display_data", "execute_result")]
    assert any(language.mime in d for d in data), data


@pytest.mark.r
def test_r_plot_arrives_as_png(languages_broker: RunningBroker) -> None:
    kernel = languages_broker.start_kernel(R.kernelspec)
    try:
        events = languages_broker.execute(kernel, R.display)
    finally:
        languages_broker.delete_kernel(kernel)
    (png,) = [e["data"]["image/png"] for e in events if "image/png" in e.get("data", {})]
    assert base64.b64decode(png).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
@pytest.mark.parametrize("language", ALL)
async def test_websocket_protocol_runs_code(
    languages_broker: RunningBroker, lang_kernel: str, language: Language, protocol: str
) -> None:
    async with await ChannelsConnection.connect(
        languages_broker.url, lang_kernel, languages_broker.token, protocol=protocol
    ) as conn:
        assert conn.v1 == (protocol == "v1")
        reply, outputs = await conn.execute(language.hello)
        info = await conn.request("shell", "kernel_info_request", {})
        while (msg := await conn.recv(timeout=30)).msg_type != "kernel_info_reply":
            pass
    assert msg.parent_msg_id == info.msg_id
    assert reply.content_dict()["status"] == "ok"
    assert stream_text(outputs) == "hello 42\n"
    assert msg.content_dict()["language_info"]["name"] == language.language


def execute_content(code: str) -> dict:
    """Every field of an execute_request: IRkernel dies on a request that lacks ``silent``."""
    return {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }


async def wait_for_reply(conn: ChannelsConnection, request_id: str, timeout: float = 30) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            msg = await conn.recv()
            if msg.channel == "shell" and msg.parent_msg_id == request_id:
                return msg.content_dict()


async def started_sleeping(conn: ChannelsConnection, language: Language) -> str:
    """Start the language's long sleep; its request id once the kernel printed first."""
    request = await conn.request("shell", "execute_request", execute_content(language.sleep))
    async with asyncio.timeout(30):
        while True:
            msg = await conn.recv()
            if msg.msg_type == "stream" and msg.parent_msg_id == request.msg_id:
                return request.msg_id


@pytest.mark.parametrize("language", ALL)
async def test_interrupt_stops_a_long_sleep(
    languages_broker: RunningBroker,
    lang_kernel: str,
    language: Language,
    request: pytest.FixtureRequest,
) -> None:
    """The sleep lasts a minute; an interrupt ends it within seconds and the kernel runs the
    next cell.

    As a person at the interrupt button would, the test presses it again when nothing
    happened: bash_kernel loses an interrupt now and then under load, with jupyter_client
    alone too. A kernel with a known interrupt flaw of its own (Deno's) is an expected
    failure when it fails, and the next cell running in time is its only proof.
    """
    if language.interrupt_flaw:
        request.applymarker(pytest.mark.xfail(reason=language.interrupt_flaw, strict=False))
    async with await ChannelsConnection.connect(
        languages_broker.url, lang_kernel, languages_broker.token
    ) as conn:
        sleep_id = await started_sleeping(conn, language)
        for _ in range(3):
            r = languages_broker.request("POST", f"/api/kernels/{lang_kernel}/interrupt")
            assert r.status_code == 204
            try:
                if not language.interrupt_flaw:  # IRkernel answers ok, bash_kernel abort
                    await wait_for_reply(conn, sleep_id, timeout=10)
                _, outputs = await conn.execute(language.hello, timeout=10)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("three interrupts ten seconds apart did not end the sleep")
        assert stream_text(outputs) == "hello 42\n"


@pytest.mark.parametrize("language", ALL)
async def test_restart_forgets_state(
    languages_broker: RunningBroker, lang_kernel: str, language: Language
) -> None:
    async with await ChannelsConnection.connect(
        languages_broker.url, lang_kernel, languages_broker.token
    ) as conn:
        _, outputs = await conn.execute(f"{language.define}\n{language.defined}")
        assert stream_text(outputs) == "yes\n"
        r = languages_broker.request("POST", f"/api/kernels/{lang_kernel}/restart")
        assert r.status_code == 200 and r.json()["id"] == lang_kernel
        _, outputs = await conn.execute(language.defined)
        assert stream_text(outputs) == "no\n"


@pytest.fixture(scope="module")
def culling_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    """A broker that shuts kernels down after 3 s without activity."""
    b = start_broker(
        tmp_path_factory.mktemp("lang-culling"),
        "--pool-size=0",
        "--cull-idle-timeout=3",
        "--cull-interval=0.5",
        env=broker_env,
    )
    yield b
    b.stop()


@pytest.mark.parametrize("language", ALL)
async def test_idle_kernel_is_culled_and_a_connected_one_kept(
    culling_broker: RunningBroker, language: Language
) -> None:
    idle = culling_broker.start_kernel(language.kernelspec)
    kept = culling_broker.start_kernel(language.kernelspec)
    try:
        async with await ChannelsConnection.connect(culling_broker.url, kept, culling_broker.token):
            async with asyncio.timeout(30):
                while culling_broker.request("GET", f"/api/kernels/{idle}").status_code != 404:
                    await asyncio.sleep(0.2)  # polling the public API: no event to await
            assert culling_broker.request("GET", f"/api/kernels/{kept}").status_code == 200
    finally:
        culling_broker.delete_kernel(kept)
    assert f"culling kernel id={idle}" in culling_broker.log()
