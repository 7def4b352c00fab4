"""Load the golden-vector reader that the firmware build also uses (one parser, one spec)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
LOADER_PATH = REPO / "firmware" / "tools" / "golden.py"


def _load_reader() -> ModuleType:
    spec = importlib.util.spec_from_file_location("firmware_golden", LOADER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _load_reader()
VECTORS: list[dict[str, str]] = golden.load_vectors()


def of_kind(kind: str) -> list[dict[str, str]]:
    """Vectors of one kind, for ``pytest.mark.parametrize``."""
    return [v for v in VECTORS if v["kind"] == kind]


def ids(vectors: list[dict[str, str]]) -> list[str]:
    """Test ids: the vector names."""
    return [v["name"] for v in vectors]
