"""The HTTP execute API's events as the agent's result model (what MCP's execute renders)."""

from __future__ import annotations

from broker.client.results import execution_from_events


def end(status: str, count: int | None = 1) -> dict:
    return {"type": "end", "status": status, "execution_count": count}


def test_outputs_become_logs_results_and_error():
    ex = execution_from_events(
        [
            {"type": "stdout", "text": "a"},
            {"type": "stderr", "text": "b"},
            {"type": "display_data", "data": {"image/png": "iVBO"}, "metadata": {}},
            {"type": "execute_result", "data": {"text/plain": "42"}, "execution_count": 3},
            {"type": "error", "name": "ValueError", "value": "v", "traceback": ["t1", "t2"]},
            end("error", 3),
        ]
    )
    assert (ex.stdout, ex.stderr, ex.text, ex.execution_count) == ("a", "b", "42", 3)
    assert ex.results[0].png == "iVBO" and not ex.results[0].is_main_result
    assert (ex.error.name, ex.error.traceback) == ("ValueError", "t1\nt2")


def test_clear_output_with_wait_clears_only_when_new_output_arrives():
    kept = execution_from_events(
        [{"type": "stdout", "text": "old"}, {"type": "clear_output", "wait": True}, end("ok")]
    )
    assert kept.stdout == "old"
    replaced = execution_from_events(
        [
            {"type": "stdout", "text": "old"},
            {"type": "clear_output", "wait": True},
            {"type": "stdout", "text": "new"},
            end("ok"),
        ]
    )
    assert replaced.stdout == "new"


def test_clear_output_without_wait_clears_at_once():
    ex = execution_from_events(
        [{"type": "stdout", "text": "old"}, {"type": "clear_output", "wait": False}, end("ok")]
    )
    assert ex.stdout == ""


def test_timeout_says_the_kernel_was_interrupted_and_kept():
    ex = execution_from_events([end("timeout")])
    assert ex.timed_out and ex.interrupted and not ex.ok
    assert "timed out and was interrupted" in ex.notice()


def test_aborted_says_the_kernel_state_is_gone():
    ex = execution_from_events([end("aborted", None)])
    assert ex.kernel_restarted and not ex.ok
    assert "state are gone" in ex.notice()
