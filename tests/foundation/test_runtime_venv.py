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


def test_runtime_holds_only_the_runtime_under_one_namespace():
    python = runtime_bin("python")
    probe = ("import importlib.util as u, json; print(json.dumps({n: u.find_spec(n) is not None "
             "for n in ['edge', 'host', 'models', 'steth.models', 'steth.edge', "
             "'steth.host']}))")
    found = json.loads(subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                      cwd="/", check=True).stdout)
    assert found == {"edge": False, "host": False, "models": False, "steth.models": False,
                     "steth.edge": True, "steth.host": True}
    for tool in ("steth-train", "steth-export", "steth-bench", "steth-lodo"):
        assert not (RUNTIME / "bin" / tool).exists(), f"{tool} in the runtime install"


def test_the_headless_runner_prints_json_lines_on_its_own():
    python = runtime_bin("python")
    result = subprocess.run([python, "-m", "steth.edge.runner", "--simulate", "--duration", "4",
                             "--speed", "4"], capture_output=True, text=True, cwd="/",
                            timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"hello", "level"} <= {e["type"] for e in events}
    assert all(e.get("simulated") is True for e in events)


def test_the_runtime_wheel_has_no_generic_top_level_name_and_no_torch(tmp_path):
    python = runtime_bin("python")
    built = subprocess.run([python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                            str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    import zipfile

    (wheel,) = tmp_path.glob("lungsound_steth-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"steth", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert {n.split("/")[1] for n in names if n.startswith("steth/")} == {"edge", "host"}
    sources = {n: zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".py")}
    torch_users = [n for n, text in sources.items()
                   if "import torch" in text or "from torch" in text]
    assert torch_users == []
    assert "steth/edge/assets/breathnet.int8.onnx" in names
    assert "steth/edge/assets/breathseg.npz.manifest.json" in names
