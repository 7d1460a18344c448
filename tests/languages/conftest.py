"""Kernels in other languages: what each one is asked to run, and a broker that offers them.

The kernels are the real third-party ones, installed by ``kernel-broker kernels install``
(``./kb test`` does it). A test of a language whose kernelspec is missing skips and says
which command installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from ..broker_process import RunningBroker, start_broker


@dataclass(frozen=True)
class Language:
    """One kernel, and code in its language for each behaviour the tests check."""

    install: str  # the name `kernel-broker kernels install` takes
    kernelspec: str
    language: str  # kernel_info's language_info.name
    tool: str  # the LLM agent's tool name for it
    hello: str  # prints "hello 42" and a newline
    fail: str  # an error the kernel reports as such
    error_value: str  # what the error's value holds
    display: str  # rich output of the MIME type below
    mime: str
    define: str  # sets a variable the restart test looks for
    defined: str  # prints "yes" when it is set, "no" otherwise
    sleep: str  # prints "sleeping" then sleeps a minute
    pwd: str  # prints the working directory and a newline
    sum_csv: str  # prints the sum of column b of data.csv (a header line, then numbers)
    write_file: str  # writes "from the kernel" to out.txt
    left_alone: str  # prints "clean" when the file helper left nothing in the session
    # The kernel's own interrupt defect, measured with jupyter_client alone: its interrupt
    # test is then an expected failure when it fails, and no reply is required
    interrupt_flaw: str = ""


BASH = Language(
    install="bash",
    kernelspec="bash",
    language="bash",
    tool="run_bash",
    hello="echo hello $((6 * 7))",
    fail="ls /no-such-directory",
    error_value="2",  # bash_kernel reports a failing command by its exit status
    display="echo '<b>bold</b>' | displayHTML",
    mime="text/html",
    define="kept=1",
    defined='[ -n "${kept:-}" ] && echo yes || echo no',
    sleep="echo sleeping; sleep 60",
    pwd="pwd",
    sum_csv="awk -F, 'NR > 1 { s += $2 } END { print s }' data.csv",
    write_file="printf 'from the kernel' > out.txt",
    # no function, variable or history entry of the helper (the pattern does not match itself)
    left_alone="{ declare -F; declare -p; history; } | grep -q '_[_]kb_d=\\|kb_[a]nswer' "
    "&& echo leaked || echo clean",
)


def deno_print(expression: str) -> str:
    """Deno code printing ``expression`` and a newline on stdout, before the cell ends.

    Deno's kernel may publish a cell's idle status before its output, whether printed
    with console.log (a pipe the kernel reads on its own) or sent with
    Deno.jupyter.broadcast; nbclient and the execute endpoint stop listening at idle, so
    the output is lost. Seen locally with jupyter_client alone (8 kernels of 5 cells: one
    kernel lost all five outputs, another its first), so it is the kernel's. The cell
    yields to Deno's event loop for 50 ms after printing, which lets the output go first.
    """
    return (
        "await Deno.jupyter.broadcast('stream', "
        f"{{name: 'stdout', text: String({expression}) + '\\n'}}); "
        "await new Promise((r) => setTimeout(r, 50))"
    )


DENO = Language(
    install="deno",
    kernelspec="deno",
    language="typescript",
    tool="run_typescript",
    hello=deno_print("'hello ' + 6 * 7"),
    fail="throw new Error('boom')",
    error_value="boom",
    display="Deno.jupyter.html`<b>bold</b>`",
    mime="text/html",
    define="var kept: number = 1",
    defined=deno_print("typeof kept !== 'undefined' ? 'yes' : 'no'"),
    sleep="console.log('sleeping'); await new Promise((r) => setTimeout(r, 60000))",
    interrupt_flaw=(
        "Deno's kernel drops the reply and idle of 1 in 6 interrupted cells, and under CPU "
        "load it can stall on an interrupt until the cell's own end (with jupyter_client "
        "alone: 5 of 30 without a reply; 1 of 8 stalled with three busy loops running)"
    ),
    pwd=deno_print("Deno.cwd()"),
    sum_csv=deno_print(
        "(await Deno.readTextFile('data.csv')).trim().split('\\n').slice(1)"
        ".reduce((s, line) => s + Number(line.split(',')[1]), 0)"
    ),
    write_file="await Deno.writeTextFile('out.txt', 'from the kernel')",
    left_alone=deno_print(
        "[typeof answer, typeof realPath, typeof MIME, typeof TEMP_MARK]"
        ".every((t) => t === 'undefined') ? 'clean' : 'leaked'"
    ),
)
R = Language(
    install="r",
    kernelspec="ir",
    language="R",
    tool="run_r",
    hello="cat(paste('hello', 6 * 7), '\\n', sep = '')",
    fail="stop('boom')",
    error_value="boom",
    display="plot(1:10)",
    mime="image/png",
    define="kept <- 1",
    defined="cat(if (exists('kept')) 'yes' else 'no', '\\n', sep = '')",
    sleep="cat('sleeping\\n'); Sys.sleep(60)",
    pwd="cat(getwd(), '\\n', sep = '')",
    sum_csv="cat(sum(read.csv('data.csv')$b), '\\n', sep = '')",
    write_file="writeLines('from the kernel', 'out.txt', sep = '')",
    # the workspace holds what the test defined (`define`) and IRkernel's .pbd_env only
    left_alone="cat(if (length(setdiff(ls(all.names = TRUE), c('kept', '.pbd_env')))) "
    "'leaked' else 'clean', '\\n', sep = '')",
)


def installed(language: Language) -> bool:
    try:
        KernelSpecManager().get_kernel_spec(language.kernelspec)
    except NoSuchKernel:
        return False
    return True


def language_params(*languages: Language) -> list:
    """pytest params: marked per language, skipped with the install command when absent."""
    return [
        pytest.param(
            lang,
            id=lang.install,
            marks=[
                getattr(pytest.mark, lang.install),
                pytest.mark.skipif(
                    not installed(lang),
                    reason=f"no {lang.kernelspec!r} kernelspec: run "
                    f"`kernel-broker kernels install {lang.install}` (./kb test does)",
                ),
            ],
        )
        for lang in languages
    ]


ALL = language_params(BASH, DENO, R)


@pytest.fixture(scope="session")
def languages_broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    """A broker offering every installed kernelspec (no pools: each test starts its own)."""
    running = start_broker(tmp_path_factory.mktemp("languages"), "--pool-size=0", env=broker_env)
    yield running
    running.stop()


@pytest.fixture
def lang_kernel(languages_broker: RunningBroker, language: Language) -> Iterator[str]:
    """A fresh kernel of ``language`` on the languages broker, shut down afterwards."""
    kernel_id = languages_broker.start_kernel(language.kernelspec)
    yield kernel_id
    languages_broker.delete_kernel(kernel_id)
