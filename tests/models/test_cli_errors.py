"""``steth-bench`` and ``steth-detect-eval`` faults: one line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steth.edge.assets import ASSETS_DIR

BIN = Path(sys.executable).parent
MODEL = str(ASSETS_DIR / "breathnet.int8.onnx")


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess[str], prog: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), lines
    return lines[0]


@pytest.mark.parametrize(("option", "value"), [("--bootstrap", "-3"), ("--limit", "-1")])
def test_bench_refuses_a_negative_count(tmp_path, option, value):
    # Checked before any data is read, so an empty data folder is enough.
    line = one_line_error(tool("steth-bench", MODEL, "--data", str(tmp_path), option, value),
                          "steth-bench")
    assert option in line


def test_bench_refuses_a_json_path_in_a_missing_folder_before_scoring(tmp_path):
    out = tmp_path / "no-such-folder" / "bench.json"
    line = one_line_error(tool("steth-bench", MODEL, "--data", str(tmp_path), "--json",
                               str(out)), "steth-bench")
    assert str(out.parent) in line and "--json" in line


def test_bench_with_bootstrap_0_scores_without_intervals(shared_data, tmp_path):
    """0 resamples means no interval: the scores come out and every ci95 is null."""
    out = tmp_path / "bench.json"
    result = tool("steth-bench", MODEL, "--data", str(shared_data), "--split", "inter",
                  "--limit", "2", "--bootstrap", "0", "--no-progress", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    entries = [e for subsets in report["results"].values() for e in subsets.values()]
    assert entries and all(e.get("ci95") is None for e in entries)
    assert all(0.0 <= e["score"] <= 1.0 for e in entries)


def fake_icbhi(root: Path, split_lines: str) -> Path:
    """An ICBHI folder in the project layout whose split file says ``split_lines``."""
    base = root / "icbhi2017"
    (base / "annotations").mkdir(parents=True)
    (base / "audio").mkdir()
    (base / "official_split.txt").write_text(split_lines)
    return root


@pytest.mark.parametrize("split_lines", [
    "",  # nothing listed
    "101_1b1_Al_sc_Meditron test\n",  # only test recordings
    "102_1b1_Ar_sc_Meditron train\n",  # a training recording without its audio
])
@pytest.mark.parametrize("cv", [False, True])
def test_detect_eval_without_icbhi_training_recordings_is_an_error(tmp_path, split_lines, cv):
    data = fake_icbhi(tmp_path / "data", split_lines)
    args = ["--data", str(data), "--no-sprsound"]
    if cv:
        run = tmp_path / "run"
        run.mkdir()
        (run / "folds.json").write_text(json.dumps({"folds": []}))
        args += ["--cv", str(run)]
    line = one_line_error(tool("steth-detect-eval", *args), "steth-detect-eval")
    assert "no ICBHI training recordings" in line and str(data) in line


@pytest.mark.parametrize(("option", "value"), [("--sprsound-limit", "-1"), ("--tune", "-5")])
def test_detect_eval_refuses_a_negative_count(tmp_path, option, value):
    line = one_line_error(tool("steth-detect-eval", "--data", str(tmp_path), option, value),
                          "steth-detect-eval")
    assert option in line


def test_detect_eval_with_a_cv_run_of_no_folds_is_an_error(shared_data, tmp_path):
    (tmp_path / "folds.json").write_text(json.dumps({"folds": []}))
    line = one_line_error(tool("steth-detect-eval", "--data", str(shared_data), "--no-sprsound",
                               "--cv", str(tmp_path)), "steth-detect-eval")
    assert "folds.json" in line and "no folds" in line


def test_bench_with_nothing_to_score_is_an_error_not_an_empty_table(tmp_path):
    data = fake_icbhi(tmp_path / "data", "101_1b1_Al_sc_Meditron test\n")  # no audio
    line = one_line_error(tool("steth-bench", MODEL, "--data", str(data), "--split", "icbhi",
                               "--no-progress"), "steth-bench")
    assert str(data) in line and "nothing to score" in line
