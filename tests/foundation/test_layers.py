"""Imports run downhill: the import-linter contracts in pyproject.toml hold, and can fail.

``lint-imports`` reads every import statement (inside functions too) of the installed
``steth.edge``, ``steth.host`` and ``steth.models``; nothing is ignored. The second test runs
the same contracts on a small throw-away package tree with one deliberate violation of each
kind, so a check that cannot fail would be caught here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO_ROOT, require

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, config: Path, pythonpath: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
    require(LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing; run ./scripts/setup-test")
    env = {"PATH": "/usr/bin:/bin"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_repository_keeps_every_layering_contract():
    result = lint_imports(REPO_ROOT, REPO_ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    kept = [line for line in result.stdout.splitlines() if line.endswith(" KEPT")]
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"]["contracts"]
    assert len(kept) == len(contracts) == 4


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_contracts_fail_on_upward_imports_and_cycles(tmp_path):
    # The same contracts, on a tree where edge imports host inside a function, host imports
    # models, models imports host, and two edge modules import each other.
    write_package(tmp_path / "src", {
        "steth/edge/__init__.py": "",
        "steth/edge/a.py": "def f():\n    import steth.host.h\n",
        "steth/edge/b.py": "import steth.edge.c\n",
        "steth/edge/c.py": "import steth.edge.b\n",
        "steth/host/__init__.py": "",
        "steth/host/h.py": "from steth.models import m\n",
        "steth/models/__init__.py": "",
        "steth/models/m.py": "import steth.host.h\n",
    })
    config = tmp_path / "pyproject.toml"
    shutil.copy(REPO_ROOT / "pyproject.toml", config)
    result = lint_imports(tmp_path, config, pythonpath=str(tmp_path / "src"))
    assert result.returncode != 0
    for contract in ("edge imports neither host nor models", "host imports edge, never models",
                     "models imports edge, never host",
                     "no import cycles between sibling modules"):
        assert f"{contract} BROKEN" in result.stdout, result.stdout
