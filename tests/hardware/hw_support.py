"""Shared helpers for the hardware tests (imported by the test modules of this folder).

``require``/``require_tool`` come from tests/conftest.py, loaded by path: several test
folders may own a ``conftest.py``, so ``import conftest`` would be ambiguous.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HARDWARE_DIR = REPO_ROOT / "hardware"
PI_DIR = HARDWARE_DIR / "pi"


def _load_root_conftest():
    spec = importlib.util.spec_from_file_location(
        "_steth_tests_root_conftest", REPO_ROOT / "tests" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _load_root_conftest()
require = _root.require
require_tool = _root.require_tool

if str(HARDWARE_DIR) not in sys.path:
    sys.path.insert(0, str(HARDWARE_DIR))

import afe_sim  # noqa: E402  (hardware/ is not a package; path set just above)

__all__ = ["HARDWARE_DIR", "PI_DIR", "REPO_ROOT", "afe_sim", "require", "require_tool"]
