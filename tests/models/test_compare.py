"""models.compare: tables built from saved benchmark reports, never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from steth.models.compare import BEGIN, END, main, tables

TASKS = ("icbhi", "1-1", "1-2", "2-1", "2-2")


def fake_report(name: str, score: float, best_val: float, seed: int = 0) -> dict:
    cell = {"score": score, "all_normal_score": 0.25, "ci95": [score - 0.05, score + 0.04]}
    return {
        "meta": {"model": name, "arch": "resnet_cbam", "frontend": "logmel",
                 "parameters": 1234, "macs_per_window": 5e6, "fp32_bytes": 4096,
                 "cycle_ms_median": 1.5, "train_cpu_minutes": 2.0, "epochs_trained": 3,
                 "best_val": best_val, "version": f"seed{seed}"},
        "results": {t: {s: dict(cell) for s in ("inter", "intra", "combined")} for t in TASKS},
    }


def write(tmp_path: Path, name: str, score: float, best_val: float = 0.5,
          seed: int = 0) -> Path:
    path = tmp_path / f"{name}.seed{seed}.json"
    path.write_text(json.dumps(fake_report(name, score, best_val, seed)))
    return path


def test_full_and_short_budget_runs_are_tabulated_apart(tmp_path: Path) -> None:
    paths = [write(tmp_path, "paper_x", 0.612), write(tmp_path, "paper_x_full", 0.789, 0.801)]
    text = tables([], extra_json=paths)
    full, short = text.split("### Short budget")
    assert "### Full budget" in full and "paper_x_full" in full
    assert "| paper_x |" not in full and "| paper_x |" in short and "paper_x_full" not in short
    # The validation column and the interval table carry the saved numbers.
    assert "| 3 | 0.801 |" in full
    assert "0.789 (0.739–0.829)" in full


def test_one_budget_gives_one_block_and_write_replaces_only_the_marked_text(
        tmp_path: Path) -> None:
    path = write(tmp_path, "paper_y", 0.5)
    assert "###" not in tables([], extra_json=[path])
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{BEGIN}\nold table\n{END}\nprose kept\n")
    assert main(["--json", str(path), "--write", str(doc)]) == 0
    text = doc.read_text()
    assert "old table" not in text and "| paper_y |" in text
    assert text.startswith("intro\n") and text.endswith("prose kept\n")


def test_a_document_without_markers_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("no markers here\n")
    assert main(["--json", str(write(tmp_path, "paper_z", 0.5)), "--write", str(doc)]) == 2
    assert doc.read_text() == "no markers here\n"


def test_seeds_get_their_own_rows_and_a_mean_row(tmp_path: Path) -> None:
    paths = [write(tmp_path, "paper_w_full", 0.70), write(tmp_path, "paper_w_full", 0.80, seed=1),
             write(tmp_path, "paper_v_full", 0.60)]
    text = tables([], extra_json=paths)
    assert "| paper_w_full |" in text and "| paper_w_full (seed 1) |" in text
    assert "| paper_w_full (mean of 2 seeds) | 0.750 |" in text
    assert "paper_v_full (mean" not in text  # one seed: no mean row
