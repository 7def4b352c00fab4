"""edge/ and host/ type-check under the ``[tool.mypy]`` settings of pyproject.toml.

mypy follows neither setuptools' import-hook editable install nor its package-dir renaming
(``steth.edge`` is the folder ``edge/``), so it checks a link tree,
``build/mypy-src/steth/{edge,host}``, whose two links point at the folders themselves: the
reports name the real files, and a file added to either folder is checked at once. By hand:
``.venv/bin/python -m tests.foundation.test_types`` (mypy's report, paths shortened).

A second test runs the same settings on a throw-away tree with one deliberate fault of each
kind, so settings that cannot fail would be caught here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO_ROOT, require

CHECKED = ("edge", "host")
LINK_ROOT = Path("build") / "mypy-src"  # relative to the folder of the pyproject.toml in use
# ``# type: ignore`` that names no error code (``# type: ignore[attr-defined]`` does).
BARE_IGNORE = re.compile(r"#\s*type:\s*ignore(?!\[\s*[a-z])")
# Per-file settings would override pyproject.toml from inside the code.
INLINE_SETTINGS = re.compile(r"#\s*mypy:|no_type_check")


def link_tree(repo: Path = REPO_ROOT) -> None:
    """Point ``build/mypy-src/steth/<folder>`` at ``<folder>`` (idempotent, parallel-safe)."""
    package = repo / LINK_ROOT / "steth"
    package.mkdir(parents=True, exist_ok=True)
    for name in CHECKED:
        link = package / name
        target = os.path.relpath(repo / name, package)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        # A new link renamed over the old one, so a concurrent run never sees none.
        fresh = package / f".{name}.{os.getpid()}"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(target, target_is_directory=True)
        os.replace(fresh, link)


def run_mypy(cwd: Path) -> subprocess.CompletedProcess[str]:
    """mypy with ``cwd``'s pyproject.toml (its ``packages`` say what is checked)."""
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}  # the config says where
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file",
                           str(cwd / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def shorten(report: str) -> str:
    return report.replace(f"{LINK_ROOT / 'steth'}{os.sep}", "")


def require_mypy() -> None:
    require(importlib.util.find_spec("mypy") is not None,
            "mypy missing from this venv; run ./scripts/setup-test")


def source_files() -> list[Path]:
    return sorted(p for name in CHECKED for p in (REPO_ROOT / name).rglob("*.py*")
                  if p.suffix in (".py", ".pyi"))


def test_edge_and_host_type_check():
    require_mypy()
    link_tree()
    result = run_mypy(REPO_ROOT)
    report = shorten(result.stdout + result.stderr)
    assert result.returncode == 0, report[-6000:]
    # Every module of both folders was checked, and nothing else.
    assert f"Success: no issues found in {len(source_files())} source files" in report, report


def test_the_settings_catch_untyped_code_unused_ignores_and_body_errors(tmp_path):
    require_mypy()
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    package = tmp_path / LINK_ROOT / "steth"
    for name in CHECKED:
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "edge" / "faults.py").write_text(
        "import soundfile  # stub-less: Any, no error\n"
        "\n"
        "\n"
        "def untyped():\n"
        "    return 1 + ''\n"
        "\n"
        "\n"
        "def typed() -> int:\n"
        "    value: int = 1  # type: ignore[assignment]\n"
        "    return value + len(soundfile.__name__)\n")
    result = run_mypy(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "faults.py:4: error: Function is missing a return type annotation" in report, report
    assert "faults.py:5: error: Unsupported operand types" in report, report
    assert "faults.py:9: error: Unused \"type: ignore\" comment" in report, report
    assert "Found 3 errors in 1 file (checked 3 source files)" in report, report


def test_every_type_ignore_names_its_code_and_no_file_sets_its_own_rules():
    bare = [f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
            for path in source_files()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if BARE_IGNORE.search(line) or INLINE_SETTINGS.search(line)]
    assert bare == [], "\n".join(bare)


def test_no_module_is_exempt_from_the_checks():
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "ignore_errors" not in text and "ignore-errors" not in text
    mypy = tomllib.loads(text)["tool"]["mypy"]
    assert mypy["check_untyped_defs"] is True and mypy["disallow_untyped_defs"] is True
    assert mypy["packages"] == [f"steth.{name}" for name in CHECKED]
    # Overrides only type stub-less third-party imports as Any; none relaxes the checks.
    for override in mypy.get("overrides", []):
        assert set(override) == {"module", "ignore_missing_imports"}, override
        assert not any(m.startswith("steth") for m in override["module"]), override


if __name__ == "__main__":
    link_tree()
    completed = run_mypy(REPO_ROOT)
    print(shorten(completed.stdout + completed.stderr), end="")
    sys.exit(completed.returncode)
