"""JupyterLab through the broker in headless Debian Chromium: print, plot, error, interrupt,
restart, as a person would do it in the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from ..broker_process import RunningBroker
from ..browser import chromium, failure_artifacts, need_chromium
from .jupyter_process import RunningJupyter, start_jupyter

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "print('hello from the broker')",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
    "raise ValueError('broker error')",
    "import time\ntime.sleep(60)",
    "import os\nos.getpid()",
]
TIMEOUT_MS = 60_000


@pytest.fixture
def lab(clients_broker: RunningBroker, tmp_path: Path) -> Iterator[RunningJupyter]:
    need_chromium()
    pytest.importorskip("jupyterlab", reason="pip install jupyterlab")
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "demo.ipynb")
    running = start_jupyter("lab", clients_broker, root, "--LabApp.expose_app_in_browser=True")
    yield running
    running.stop()


class Notebook:
    """The open notebook in the page: run cells, read what they show."""

    def __init__(self, page) -> None:
        self.page = page

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def wait_idle(self) -> None:
        """Until the kernel is connected through Jupyter Server and idle (the toolbar's
        indicator says idle before any kernel exists, so ask the session itself)."""
        self.page.wait_for_function(
            """() => {
                const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext
                    ?.session?.kernel;
                return kernel?.connectionStatus === 'connected' && kernel.status === 'idle';
            }""",
            timeout=TIMEOUT_MS,
        )

    def run(self, index: int) -> None:
        """Click into the cell and press Shift+Enter, as a user does."""
        self.cell(index).locator(".jp-InputArea-editor").first.click()
        self.page.keyboard.press("Shift+Enter")

    def output(self, index: int):
        return self.cell(index).locator(".jp-OutputArea-output")

    def command(self, name: str) -> None:
        """Start a JupyterLab command without awaiting it (it may wait for a dialog)."""
        self.page.evaluate(f"() => {{ window.jupyterapp.commands.execute({name!r}); }}")


def drive(page, lab: RunningJupyter) -> None:

    page.goto(f"{lab.url}/lab/tree/demo.ipynb?token={lab.token}", timeout=TIMEOUT_MS)
    nb = Notebook(page)
    nb.wait_idle()

    nb.run(0)
    nb.output(0).filter(has_text="hello from the broker").wait_for(timeout=TIMEOUT_MS)

    nb.run(1)
    nb.output(1).locator('img[src^="data:image/png"]').wait_for(timeout=TIMEOUT_MS)

    nb.run(2)
    error = nb.output(2).filter(has_text="ValueError")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "broker error" in error.inner_text()

    nb.run(3)
    page.wait_for_selector(
        '.jp-Notebook-ExecutionIndicator[data-status="busy"]', timeout=TIMEOUT_MS
    )
    page.locator('jp-button[data-command="notebook:interrupt-kernel"]').click()
    nb.output(3).filter(has_text="KeyboardInterrupt").wait_for(timeout=TIMEOUT_MS)
    nb.wait_idle()

    nb.run(4)
    nb.output(4).first.wait_for(timeout=TIMEOUT_MS)
    pid_before = nb.output(4).first.inner_text().strip()
    nb.command("kernelmenu:restart")
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart kernel?"
    # A requested restart is not announced as a crash (no "appears to have died" dialog).
    died = page.locator(".jp-Dialog", has_text="appears to have died")
    nb.wait_idle()
    assert died.count() == 0
    nb.run(4)
    page.wait_for_function(
        """([selector, before]) => {
            const out = document.querySelectorAll(selector)[4]
                ?.querySelector('.jp-OutputArea-output');
            return out && out.innerText.trim() && out.innerText.trim() !== before;
        }""",
        arg=[".jp-Notebook .jp-Cell", pid_before],
        timeout=TIMEOUT_MS,
    )


def test_jupyterlab_runs_a_notebook_on_the_broker(lab: RunningJupyter) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        with failure_artifacts(page, "jupyterlab", lab.log):
            drive(page, lab)
