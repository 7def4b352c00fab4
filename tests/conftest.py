"""Shared test helpers.

Under ``CI=true`` a missing data set or tool is a failure, never a silent skip; on a
developer machine it is a skip with a reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def data_root() -> Path:
    """Where the real data sets live (``STETH_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("STETH_DATA", REPO_ROOT.parent / "shared" / "data"))


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail under CI, when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite under CI=true: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of an executable, or skip/fail as :func:`require` does."""
    path = shutil.which(name)
    require(path is not None, f"tool {name!r} not on PATH")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    require((root / "sprsound2022").is_dir(), f"data set folder {root} not found")
    return root
