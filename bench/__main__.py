"""``python -m bench``: the broker beside Enterprise Gateway, Kernel Gateway and direct ZMQ."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import report
from .anchors import ANCHORS
from .kernelspec import describe
from .measure import Sizes
from .run import BASE, TARGETS, Plan, run

HERE = Path(__file__).resolve().parent
DEFAULT_MARKDOWN = HERE.parent / "docs" / "benchmarks.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="a checkout (e.g. a worktree of main) whose broker is measured too, as 'base', "
        "taking turns with this one: before and after a change in one run",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (smoke test)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument(
        "--results-dir", type=Path, default=HERE / "results", help="where the JSON results go"
    )
    parser.add_argument(
        "--markdown",
        type=lambda text: Path(text) if text else False,
        help=f"markdown file whose results section is rewritten "
        f"(default {DEFAULT_MARKDOWN.relative_to(HERE.parent)}; '' or --quick for none)",
    )
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    if args.baseline:
        args.targets.append(BASE)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.markdown is None and not args.quick:
        args.markdown = DEFAULT_MARKDOWN
    return args


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {platform.platform()}"


def metadata(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    versions = {
        "kernel-broker": version("kernel-broker"),
        "jupyter_client": version("jupyter_client"),
    }
    for name in args.targets:
        if name in ANCHORS and ANCHORS[name].is_installed():
            versions[ANCHORS[name].requirement.split("=")[0]] = ANCHORS[name].version()
    return {
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "kernel": describe(),
        "versions": versions,
        "rounds": args.rounds,
        "sizes": (Sizes.quick() if args.quick else Sizes()).as_dict(),
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON document it wrote (tests read it)."""
    args = parse_args(argv)
    if argv is None:
        # SIGTERM unwinds like Ctrl-C, so every server and kernel we started is stopped.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    sizes = Sizes.quick() if args.quick else Sizes()
    raw = run(Plan(args.targets, sizes, args.rounds, args.baseline), log)
    meta = metadata(args, argv)
    rows = report.summarize(raw)
    document = {"meta": meta, "summary": rows, "raw": raw}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.results_dir / f"bench-{stamp}.json"
    report.write_json(json_path, document)
    print()
    print(report.text_table(report.goal_rows(rows)))
    print()
    print(report.text_table(report.table_rows(rows, sizes.concurrent)))
    print(f"\nfigures (ratio to direct ZMQ); JSON: {json_path}")
    if args.markdown:
        report.update_markdown(args.markdown, report.markdown_section(meta, rows))
        print(f"markdown: {args.markdown}")
    return document


if __name__ == "__main__":
    main()
