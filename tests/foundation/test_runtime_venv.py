"""The lean Pi runtime (``pip install .``, no extras) runs without torch.

``scripts/setup-test`` builds ``.venv-runtime``; this test uses it as a separate venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT, require

RUNTIME = Path(os.environ.get("STETH_RUNTIME_VENV", REPO_ROOT / ".venv-runtime"))


def runtime_bin(name: str) -> Path:
    path = RUNTIME / "bin" / name
    require(path.exists(), f"runtime venv missing ({path}); run ./scripts/setup-test")
    return path


def test_runtime_has_no_torch_and_imports_the_edge_and_host():
    python = runtime_bin("python")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    ok = subprocess.run([python, "-c", "import steth.edge.runner, steth.edge.pipeline, "
                         "steth.edge.infer, steth.host.bedside, steth.host.dashboard, "
                         "steth.host.recorder, steth.host.sessions; import sys; "
                         "assert 'torch' not in sys.modules"], capture_output=True, text=True,
                        cwd="/")
    assert ok.returncode == 0, ok.stderr


def test_runtime_edge_run_simulate_uses_the_embedded_model_and_marks_everything():
    edge_run = runtime_bin("edge-run")
    result = subprocess.run([edge_run, "--simulate", "--no-dashboard", "--duration", "5",
                             "--speed", "4"], capture_output=True, text=True, cwd="/",
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SIMULATED" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {e["type"] for e in events}
    assert {"hello", "level", "link", "cycle"} <= kinds, kinds
    hello = next(e for e in events if e["type"] == "hello")
    assert hello["model"]["name"] == "breathnet"
    assert all(e.get("simulated") is True for e in events)
