"""scripts/train-papers-full: the resumable driver of the full-budget paper runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train-papers-full"
CONFIGS = ROOT / "models" / "configs"


def test_an_unknown_design_is_a_one_line_error_and_nothing_runs() -> None:
    done = subprocess.run([str(SCRIPT), "no_such_design"], capture_output=True, text=True,
                          timeout=60, env={"PY": "/nonexistent", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "no such config: models/configs/paper_no_such_design_full.toml "
        "(a name is the part between paper_ and _full)"]


def test_every_full_config_is_the_short_experiment_with_a_larger_budget() -> None:
    """Each *_full.toml differs from its short twin only in name, budget and comments."""
    import tomllib

    budget_keys = {"name", "epochs", "max_samples_per_epoch"}
    fulls = sorted(CONFIGS.glob("paper_*_full.toml"))
    assert len(fulls) >= 9
    for full in fulls:
        short = CONFIGS / full.name.replace("_full.toml", ".toml")
        a, b = tomllib.loads(short.read_text()), tomllib.loads(full.read_text())
        assert b["name"] == full.stem and b["max_samples_per_epoch"] == 0
        differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert differing <= budget_keys, (full.name, differing - budget_keys)
