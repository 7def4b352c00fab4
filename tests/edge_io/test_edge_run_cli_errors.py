"""``edge-run`` faults a user meets: one clear line, the right exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from steth.edge.assets import ASSETS_DIR

EDGE_RUN = str(Path(sys.executable).with_name("edge-run"))


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_RUN, *args], capture_output=True, text=True, timeout=timeout)


def test_missing_port_says_what_to_do_and_keeps_retrying_without_simulating():
    result = run("--port", "/dev/does-not-exist", "--no-dashboard", "--duration", "3")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    port_lines = [line for line in result.stderr.splitlines() if "/dev/does-not-exist" in line]
    assert len(port_lines) == 1 and "retrying" in port_lines[0]
    assert "SIMULATED" not in result.stdout + result.stderr
    assert '"type":"cycle"' not in result.stdout  # no audio, so nothing is invented
    assert '"state":"stale"' in result.stdout  # the silent link is reported


def test_missing_model_is_one_line_and_exit_3(tmp_path):
    result = run("--simulate", "--no-dashboard", "--model", str(tmp_path / "none.onnx"))
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0 and "--model" in result.stderr


def test_corrupt_model_is_refused(tmp_path):
    exports = ASSETS_DIR
    bad = tmp_path / "breathnet.int8.onnx"
    bad.write_bytes((exports / "breathnet.int8.onnx").read_bytes()[:-100])
    (tmp_path / "breathnet.int8.onnx.manifest.json").write_bytes(
        (exports / "breathnet.int8.onnx.manifest.json").read_bytes())
    result = run("--simulate", "--no-dashboard", "--model", str(bad))
    assert result.returncode == 3 and "SHA-256" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_replay_file_is_a_clear_error(tmp_path):
    result = run("--replay", str(tmp_path / "missing.flac"), "--no-dashboard")
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert "missing.flac" in result.stderr
