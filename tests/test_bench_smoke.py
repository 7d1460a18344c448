"""The benchmark code runs end to end against our broker and direct ZMQ (no anchors installed).

Only the code is checked here, with --quick sizes; the figures on a shared CI machine mean
nothing, so no performance goal is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main


@pytest.mark.slow
def test_quick_bench_measures_broker_and_direct(tmp_path: Path) -> None:
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\nProse that must survive.\n")

    document = main(
        [
            "--quick",
            "--targets",
            "broker,direct",
            "--results-dir",
            str(tmp_path / "results"),
            "--markdown",
            str(markdown),
        ]
    )

    rows = document["summary"]
    assert set(rows) == {"broker/v1", "broker/legacy", "direct/zmq"}
    for label, row in rows.items():
        for key in ("cold_start_ms", "exec_p50_ms", "exec_p99_ms", "concurrent_s"):
            assert row[key] > 0, (label, key)
        assert row["concurrent_failures"] == 0, label
        for output in ("print", "png"):
            assert row[output]["bytes_dropped"] == 0, (label, output)
        assert row["ratios"]["exec_p50_ms"] > 0, label
    assert rows["direct/zmq"]["ratios"]["print"] == 1.0
    assert rows["broker/v1"]["idle_rss_mb"] > 0

    [json_file] = (tmp_path / "results").glob("bench-*.json")
    assert json.loads(json_file.read_text())["meta"]["command"].startswith("python -m bench")
    text = markdown.read_text()
    assert "Prose that must survive." in text
    assert "| broker/v1 |" in text


@pytest.mark.slow
def test_shutdown_bench_prints_both_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.shutdown import main as shutdown_bench

    shutdown_bench(["--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("broker DELETE /api/kernels/{id}") and "p50" in lines[0]
    assert lines[1].startswith("jupyter_client shutdown_kernel()") and "p50" in lines[1]


@pytest.mark.slow
def test_claim_bench_prints_a_row_per_path_with_its_target(tmp_path: Path) -> None:
    from bench.claim import main as claim_bench

    printed: list[str] = []
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\nProse that must survive.\n")

    document = claim_bench(["--rounds", "2", "--markdown", str(markdown)], out=printed.append)

    assert set(document["results"]) == {"local"}
    for path, row in document["results"]["local"].items():
        assert 0 < row["p50_ms"] <= row["p99_ms"], path
    table = printed[0]
    assert "websocket + first print(1) stream" in table
    assert "POST .../execute to first stdout event" in table and "<= 25 ms" in table
    assert "MCP start_kernel + execute" in table and "<= 40 ms" in table
    text = markdown.read_text()
    assert "Prose that must survive." in text
    assert "| local | MCP start_kernel + execute |" in text


@pytest.mark.slow
def test_claim_bench_measures_pod_kernels_on_the_test_control_plane() -> None:
    from bench.claim import main as claim_bench

    printed: list[str] = []
    document = claim_bench(["--rounds", "1", "--pods"], out=printed.append)

    assert set(document["results"]["pods"]) == {"websocket", "http", "mcp"}
    assert [line.split()[0] for line in printed[0].splitlines()[2:]] == ["local"] * 3 + ["pods"] * 3


@pytest.mark.slow
def test_load_bench_measures_every_size_and_finds_nothing_misrouted(tmp_path: Path) -> None:
    from bench.load import BEGIN
    from bench.load import main as load_bench

    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\nProse that must survive.\n")

    sizes = "--kernels 1,2 --clients 2 --seconds 2 --rate 20 --targets broker".split()
    document = load_bench(
        [*sizes, "--results-dir", str(tmp_path / "results"), "--markdown", str(markdown)],
        out=lambda line: None,
    )

    levels = document["results"]["broker"]["levels"]
    assert [(lv["kernels"], lv["websockets"]) for lv in levels] == [(1, 2), (2, 4)]
    for level in levels:
        assert level["execute_ms"]["p50"] > 0 and level["rest_ms"]["p99"] > 0
        assert level["cpu_ms_per_1000"] > 0 and level["mb_per_websocket"] is not None
        assert (level["error_count"], level["foreign_replies"]) == (0, 0)
    assert document["results"]["broker"]["kernels_left_running"] == 0
    text = markdown.read_text()
    assert "Prose that must survive." in text and BEGIN in text and "| broker | 2 / 4 |" in text


@pytest.mark.slow
def test_chat_upload_bench_prints_both_paths_and_the_memory_rise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.chat_upload import main as chat_upload_bench

    chat_upload_bench(["--mib", "2", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 MiB uploads, median of 1")
    assert "straight to the broker (anchor):" in lines[1] and lines[1].endswith("MiB/s")
    assert "through llm-agent serve:" in lines[2] and "x the anchor" in lines[2]
    assert "llm-agent serve peak RSS rise:" in lines[3]


@pytest.mark.slow
def test_pod_scale_bench_counts_no_request_per_kernel_at_steady_state(capsys) -> None:
    from bench.pod_scale import main as pod_scale_bench

    results = pod_scale_bench(["--kernels", "6", "--burst", "2", "--window", "3", "--settle", "1"])

    assert results["kernels"] == 6 and results["pods"] == 8  # and the refilled pool
    steady = results["steady"]
    assert steady["open_watches"] == 1
    assert set(steady["by_verb"]) <= {"update leases"}  # the Lease alone: no poll per kernel
    assert "API requests per second at steady state" in capsys.readouterr().out
