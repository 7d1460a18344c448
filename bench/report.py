"""Turn raw rounds into figures, ratios to direct ZMQ, a terminal table, JSON and markdown."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin (written by python -m bench) -->"
END = "<!-- bench:results:end -->"
DIRECT = "direct/zmq"


DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def add_markdown_option(parser: argparse.ArgumentParser, section: str) -> None:
    """``--markdown FILE``: the file whose ``section`` is rewritten (docs/benchmarks.md;
    '' for none)."""
    parser.add_argument(
        "--markdown",
        type=lambda text: Path(text) if text else None,
        default=DOCS,
        help=f"file whose {section} section is rewritten ('' for none)",
    )


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 2nd largest)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _samples(rounds: list[dict], target: str, *path: str) -> list[Any]:
    """A figure across rounds (skipping rounds where it failed)."""
    out = []
    for r in rounds:
        value: Any = r.get(target, {})
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if isinstance(value, list | dict) and value and "error" not in value:
            out.append(value)
    return out


def _throughput(runs: list[dict]) -> dict[str, float] | None:
    if not runs:
        return None
    return {
        "mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
        "bytes_dropped": max(r["bytes_dropped"] for r in runs),
        "bytes_expected": runs[0]["bytes_expected"],
    }


def summarize(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per target and protocol: the figures the tables show (times in ms and s).

    Ratios come from the figures pooled over all rounds; ``round_ratios`` has the same
    ratios computed inside each round, whose spread shows how noisy the machine was.
    """
    idle = raw.get("idle_memory", {})
    rows = _rows(raw["rounds"], idle)
    per_round = [_rows([r], idle) for r in raw["rounds"]]
    for label, row in rows.items():
        row["round_ratios"] = {
            key: [r[label]["ratios"][key] for r in per_round if label in r] for key in RATIO_KEYS
        }
    return rows


def _rows(rounds: list[dict], idle_memory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for target in rounds[0] if rounds else {}:
        starts = [s for run in _samples(rounds, target, "cold_start_s") for s in run]
        bursts = _samples(rounds, target, "concurrent")
        walls = [b["wall_s"] for b in bursts if b["started"]]
        memory = _samples(rounds, target, "memory")
        shared = {
            "cold_start_ms": 1000 * statistics.median(starts) if starts else None,
            "concurrent_s": statistics.median(walls) if walls else None,
            "concurrent_failures": sum(b["failures"] for b in bursts) if bursts else None,
            "idle_rss_mb": idle_memory.get(target, {}).get("rss_mb"),
            "peak_rss_mb": max((m["peak_rss_mb"] for m in memory), default=None),
        }
        for protocol in rounds[0][target]["protocols"]:
            data = [r[target]["protocols"].get(protocol, {}) for r in rounds]
            if any("unsupported" in d for d in data):
                continue
            rts = [
                s
                for d in data
                if isinstance(d.get("round_trip_s"), list)
                for s in d["round_trip_s"]
            ]
            rows[f"{target}/{protocol}"] = {
                **shared,
                "exec_p50_ms": 1000 * percentile(rts, 50) if rts else None,
                "exec_p99_ms": 1000 * percentile(rts, 99) if rts else None,
                "print": _throughput([run for d in data for run in d.get("print", [])]),
                "png": _throughput([run for d in data for run in d.get("png", [])]),
            }
    _add_ratios(rows)
    return rows


def _value(row: dict[str, Any], key: str) -> float | None:
    if key in ("print", "png"):
        return row[key]["mb_per_s"] if row.get(key) else None
    return row.get(key)


RATIO_KEYS = ("cold_start_ms", "exec_p50_ms", "exec_p99_ms", "print", "png", "concurrent_s")


def _add_ratios(rows: dict[str, dict[str, Any]]) -> None:
    """``ratios[key]`` = this row's figure / direct ZMQ's (for MB/s too: higher is better)."""
    direct = rows.get(DIRECT)
    for row in rows.values():
        row["ratios"] = {}
        for key in RATIO_KEYS:
            mine, base = _value(row, key), _value(direct, key) if direct else None
            row["ratios"][key] = mine / base if mine is not None and base else None


# --- rendering -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1, ratio: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return f"{text} ({ratio:.2f}x)" if ratio is not None else text


def _throughput_cell(row: dict[str, Any], key: str) -> str:
    figure = row.get(key)
    if not figure:
        return "failed"
    cell = _fmt(figure["mb_per_s"], 1, row["ratios"][key])
    dropped = figure["bytes_dropped"]
    return cell + (f", dropped {dropped / figure['bytes_expected']:.0%}" if dropped else "")


COLUMNS = (
    "target/protocol",
    "cold start p50 ms",
    "1+1 p50 ms",
    "1+1 p99 ms",
    "print MB/s",
    "PNG MB/s",
    "20 concurrent s (failed)",
    "server RSS MB idle/peak",
)


def table_rows(rows: dict[str, dict[str, Any]], concurrent: int) -> list[list[str]]:
    """Cells for each row, figures with their ratio to direct ZMQ in parentheses."""
    out = []
    for label, row in rows.items():
        r = row["ratios"]
        burst = _fmt(row["concurrent_s"], 2, r["concurrent_s"])
        if row["concurrent_failures"] is not None:
            burst += f" ({row['concurrent_failures']})"
        memory = (
            "-"
            if row["idle_rss_mb"] is None
            else (f"{row['idle_rss_mb']:.0f}/{row['peak_rss_mb'] or 0:.0f}")
        )
        out.append(
            [
                label,
                _fmt(row["cold_start_ms"], 0, r["cold_start_ms"]),
                _fmt(row["exec_p50_ms"], 2, r["exec_p50_ms"]),
                _fmt(row["exec_p99_ms"], 2, r["exec_p99_ms"]),
                _throughput_cell(row, "print"),
                _throughput_cell(row, "png"),
                burst,
                memory,
            ]
        )
    header = list(COLUMNS)
    header[6] = f"{concurrent} concurrent s (failed)"
    return [header, *out]


def text_table(cells: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in cells[0]) + "|")
    return "\n".join(lines)


# Goals from issues 2 and 16: (label, row key, limit on the ratio to direct, higher is better)
GOALS = (
    ("execute round trip p50 <= 1.10x direct", "exec_p50_ms", 1.10, False),
    ("printed output >= 1.0x direct, nothing dropped", "print", 1.0, True),
    ("PNG display data >= 1.0x direct, nothing dropped", "png", 1.0, True),
    ("cold start p50 <= 1.1x direct", "cold_start_ms", 1.1, False),
)


def goal_rows(rows: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Each goal, with our broker's ratio (per protocol) beside the anchors', and its range
    over rounds."""
    labels = [label for label in rows if label != DIRECT]
    out = [["goal", *labels]]
    for text, key, limit, higher in GOALS:
        cells = [text]
        for label in labels:
            ratio = rows[label]["ratios"][key]
            if ratio is None:
                cells.append("n/a")
                continue
            ok = ratio >= limit if higher else ratio <= limit
            if key in ("print", "png"):
                ok = ok and rows[label][key]["bytes_dropped"] == 0
            mark = (" met" if ok else " missed") if label.startswith("broker/") else ""
            cells.append(f"{ratio:.2f}x{mark}{_spread(rows[label]['round_ratios'][key])}")
        out.append(cells)
    return out


def _spread(ratios: list[float | None]) -> str:
    """`` (0.95-1.10)``: the lowest and highest ratio seen in a single round."""
    known = [r for r in ratios if r is not None]
    if len(known) < 2:
        return ""
    return f" ({min(known):.2f}-{max(known):.2f})"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str))


def markdown_section(meta: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    """The generated part of docs/benchmarks.md: command, machine, goals, full table."""
    sizes = meta["sizes"]
    return "\n".join(
        [
            BEGIN,
            f"Command: `{meta['command']}`  ",
            f"Date: {meta['date']}  ",
            f"Machine: {meta['machine']}  ",
            f"Kernels (every target): {meta['kernel']}  ",
            f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}  ",
            f"Rounds: {meta['rounds']} (targets interleaved); sizes per round: "
            + ", ".join(f"{k}={v}" for k, v in sizes.items()),
            "",
            markdown_table(goal_rows(rows)),
            "",
            markdown_table(table_rows(rows, sizes["concurrent"])),
            END,
        ]
    )


def update_markdown(path: Path, section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the generated section of ``path`` between ``begin`` and ``end``, keeping the
    prose around it."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + section + tail)
