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


# ---------------------------------------------------------------- run summary
_LOADED: dict[str, int] = {}
_AREA_SECONDS: dict[str, float] = {}


def note_loaded(kind: str, count: int) -> None:
    """Record how many real recordings a test loaded (printed at the end of the run)."""
    _LOADED[kind] = max(_LOADED.get(kind, 0), count)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    area = report.nodeid.split("/")[1] if report.nodeid.startswith("tests/") else "other"
    _AREA_SECONDS[area] = _AREA_SECONDS.get(area, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    write = terminalreporter.write_line
    write("")
    write("time per test area: " + ", ".join(
        f"{area} {seconds:.1f}s" for area, seconds in sorted(_AREA_SECONDS.items())))
    if _LOADED:
        write("real recordings loaded: " + ", ".join(
            f"{kind} {n}" for kind, n in sorted(_LOADED.items())))
