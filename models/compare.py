"""Collect ``steth-bench --run`` results into the comparison tables of docs/papers.md.

``python -m steth.models.compare models/configs/paper_*.toml --write docs/papers.md`` reads each
run's saved benchmark JSON (``<run folder>/bench_combined_clean.json``) and replaces the text
between the ``compare:begin`` / ``compare:end`` markers. A config without results gets a row
that says so; no number is ever filled in by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from steth.models.benchmark import run_results_path

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
SCORE_TASKS = (("icbhi", "ICBHI Score (4 classes)"), ("1-1", "BioCAS 1-1"),
               ("1-2", "BioCAS 1-2"), ("2-1", "BioCAS 2-1"), ("2-2", "BioCAS 2-2"))
SUBSETS = ("inter", "intra", "combined")


def load_result(config_path: Path, seed: int | None = None) -> tuple[str, dict | None, str]:
    """(run name, saved report or None, status text) for one experiment config."""
    from steth.models.train import TrainConfig, run_dir

    cfg = TrainConfig.from_toml(config_path)
    if seed is not None:
        cfg.seed = seed
    folder = run_dir(cfg)
    path = run_results_path(folder)
    if path.is_file():
        return cfg.name, json.loads(path.read_text()), "ok"
    if (folder / "best_model.pt").is_file():
        return cfg.name, None, "trained, not benchmarked in this session"
    return cfg.name, None, "not trained in this session"


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def cost_row(name: str, report: dict | None, status: str) -> str:
    if report is None:
        return f"| {name} | {status} | | | | | | | |"
    m = report["meta"]
    return (f"| {name} | {m['arch']} ({m['frontend']}) | {m['parameters']:,} | "
            f"{m['macs_per_window'] / 1e6:.1f} M | {m['fp32_bytes'] / 1024:.0f} KiB | "
            f"{m['cycle_ms_median']:.2f} | {_num(m.get('train_cpu_minutes'), '.1f')} | "
            f"{m['epochs_trained']} | {_num(m.get('best_val'), '.3f')} |")


def _with_ci(results: dict, task: str) -> str:
    cell = results.get(task, {}).get("combined")
    if cell is None:
        return "–"
    ci = cell.get("ci95")
    interval = f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else ""
    return f"{cell['score']:.3f}{interval}"




def _triple(results: dict, task: str, key: str = "score") -> str:
    per = results.get(task, {})
    return " / ".join(_num(per[s][key], ".3f") if s in per else "–" for s in SUBSETS)


def score_row(name: str, report: dict | None, status: str,
              cell: Callable[[dict, str], str] = _triple) -> str:
    """One row of a score table; ``cell`` formats a task (default: inter / intra / combined)."""
    if report is None:
        return f"| {name} | {status} |" + " |" * (len(SCORE_TASKS) - 1)
    cells = [cell(report["results"], task) for task, _ in SCORE_TASKS]
    return f"| {name} | " + " | ".join(cells) + " |"


def baseline_row(reports: list[dict]) -> str:
    """The all-Normal predictor on the same test items (from any saved report)."""
    if not reports:
        return "| all-Normal baseline | no results yet |" + " |" * (len(SCORE_TASKS) - 1)
    cells = [_triple(reports[0]["results"], task, "all_normal_score") for task, _ in SCORE_TASKS]
    return "| all-Normal baseline | " + " | ".join(cells) + " |"


def row_name(meta: dict) -> str:
    """The run's name; seeds other than 0 are named, seed 0 is the plain name."""
    version = str(meta.get("version", ""))
    if version.startswith("seed") and version != "seed0":
        return f"{meta['model']} (seed {version[4:]})"
    return meta["model"]


def load_json(path: Path) -> tuple[str, dict | None, str]:
    """A report saved elsewhere with ``steth-bench --run ... --json PATH``."""
    report = json.loads(path.read_text())
    return row_name(report["meta"]), report, "ok"


def seed_mean_rows(rows: list[tuple[str, dict | None, str]]) -> list[str]:
    """One row per run trained with several seeds: the mean combined score of each task."""
    by_run: dict[str, list[dict]] = {}
    for _, report, _ in rows:
        if report is not None:
            by_run.setdefault(report["meta"]["model"], []).append(report["results"])
    lines = []
    for name, results in by_run.items():
        if len(results) < 2:
            continue
        cells = []
        for task, _ in SCORE_TASKS:
            scores = [r[task]["combined"]["score"] for r in results
                      if "combined" in r.get(task, {})]
            cells.append(_num(sum(scores) / len(scores) if scores else None, ".3f"))
        lines.append(f"| {name} (mean of {len(results)} seeds) | " + " | ".join(cells) + " |")
    return lines


FULL_SUFFIX = "_full"


def _table_block(rows: list[tuple[str, dict | None, str]], reports: list[dict]) -> list[str]:
    lines = ["| run | network (front end) | parameters | MACs / window | fp32 size | "
             "ms / cycle | CPU-min to train | epochs | validation |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [cost_row(*r) for r in rows]
    header = ["| run | " + " | ".join(title for _, title in SCORE_TASKS) + " |",
              "|---|" + "---|" * len(SCORE_TASKS)]
    lines += ["", "Scores on the SPRSound 2022 test set, each cell inter / intra / combined:", "",
              *header]
    lines += [score_row(*r) for r in rows]
    lines.append(baseline_row(reports))
    lines += ["", "Combined scores with their patient-bootstrap 95 % intervals:", "", *header]
    lines += [score_row(*r, cell=_with_ci) for r in rows]
    lines += seed_mean_rows(rows)
    return lines


def tables(configs: list[Path], seed: int | None = None,
           extra_json: list[Path] | None = None) -> str:
    """The cost, score and interval tables, as markdown.

    Runs named ``*_full`` (the full training budget) are tabulated apart from the others
    (short runs), so no reader compares a network across budgets by accident.
    "validation" is the run's best validation score, the one it was selected on.
    """
    rows = [load_result(c, seed) for c in configs]
    rows += [load_json(p) for p in extra_json or []]
    reports = [r for _, r, _ in rows if r is not None]
    full = [r for r in rows if r[0].split(" ")[0].endswith(FULL_SUFFIX)]
    short = [r for r in rows if r not in full]
    if not full or not short:
        return "\n".join(_table_block(rows, reports))
    lines = ["### Full budget", "", *_table_block(full, reports), "",
             "### Short budget", "", *_table_block(short, reports)]
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """Swap the text between the compare markers for ``block``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"markers {BEGIN} and {END} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steth.models.compare",
                                     description="Tabulate the paper runs' benchmark results.")
    parser.add_argument("configs", type=Path, nargs="*", help="training configs, in order")
    parser.add_argument("--seed", type=int, help="seed of the runs (default: each config's)")
    parser.add_argument("--json", type=Path, action="append", default=[],
                        help="also a report saved with steth-bench --run --json (repeatable)")
    parser.add_argument("--write", type=Path, help="markdown file whose marked block to replace")
    args = parser.parse_args(argv)
    try:
        block = tables(args.configs, args.seed, args.json)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if args.write is None:
        print(block)
        return 0
    try:
        args.write.write_text(replace_between_markers(args.write.read_text(), block))
    except (OSError, ValueError) as exc:
        print(f"compare: {args.write}: {exc}", file=sys.stderr)
        return 2
    print(f"updated {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
