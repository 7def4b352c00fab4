"""``edge-run`` faults a user meets: one clear line, the right exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steth.edge.assets import ASSETS_DIR

EDGE_RUN = str(Path(sys.executable).with_name("edge-run"))


def run(*args: str, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_RUN, *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


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


@pytest.mark.parametrize("kind", ["regular file", "/dev/null"])
def test_port_that_is_not_a_serial_device_is_one_line_and_exit_5(tmp_path, kind):
    # Retrying cannot turn a file into a serial port, so this is refused at start.
    port = "/dev/null" if kind == "/dev/null" else str(tmp_path / "capture.bin")
    if kind == "regular file":
        Path(port).write_bytes(b"\x00" * 16)
    result = run("--port", port, "--no-dashboard", "--duration", "3", timeout=8)
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a serial device" in lines[0] and port in lines[0]
    assert "retrying" not in lines[0]


@pytest.mark.parametrize(("option", "value"), [
    ("--duration", "-5"), ("--duration", "nan"), ("--duration", "inf"),
    ("--sim-duration", "-1"), ("--sim-duration", "nan"),
    ("--threads", "0"), ("--threads", "-2"),
    ("--baud", "0"), ("--baud", "-9600"),
    ("--volume", "nan"), ("--volume", "-0.5"), ("--volume", "2"),
    ("--listen-delay", "nan"), ("--listen-delay", "-1"),
    ("--serve", "-1"), ("--serve", "70000"),
])
def test_out_of_range_number_is_one_line_and_exit_2(option, value):
    # Each of these used to run forever, run with a silently changed meaning, or crash.
    # A token is set so that --serve reaches the port itself.
    bounded = [] if option == "--duration" else ["--duration", "2"]
    result = run("--simulate", "--no-dashboard", *bounded, option, value, timeout=8,
                 env={"STETH_TOKEN": "0123456789abcdef0123456789abcdef"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edge-run: {option} must be"), lines
    assert '"type":"cycle"' not in result.stdout


def test_zero_duration_still_means_until_stopped():
    """0 is the documented 'run until stopped'; only the stop (here a timeout) ends it."""
    with pytest.raises(subprocess.TimeoutExpired):
        run("--simulate", "--no-dashboard", "--duration", "0", timeout=3)


def test_negative_simulation_seed_is_a_usage_error_not_a_traceback():
    result = run("--simulate", "--no-dashboard", "--duration", "2", "--sim-seed", "-1",
                 timeout=8)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--sim-seed" in result.stderr.strip().splitlines()[-1]


def test_more_threads_than_cores_is_one_line_and_exit_2():
    # Tens of thousands of inference threads used to hang start-up instead of failing.
    result = run("--simulate", "--no-dashboard", "--duration", "2", "--threads", "100000",
                 timeout=8)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-run: --threads must be"), lines


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_record_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    where = blocker if kind == "a file" else blocker / "sessions"
    result = run("--simulate", "--no-dashboard", "--duration", "2", "--record", str(where),
                 timeout=8)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "SIMULATED" not in line]
    assert len(lines) == 1 and str(where) in lines[0] and "--record" in lines[0], lines


@pytest.mark.parametrize(("option", "value"), [
    ("--duration", "-5"), ("--duration", "nan"), ("--sim-duration", "-1"),
    ("--threads", "0"), ("--baud", "0"), ("--serve", "70000"),
])
def test_the_headless_runner_refuses_the_same_numbers(option, value):
    bounded = [] if option == "--duration" else ["--duration", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "steth.edge.runner", "--simulate", *bounded, option, value],
        capture_output=True, text=True, timeout=8,
        env={**os.environ, "STETH_TOKEN": "0123456789abcdef0123456789abcdef"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{option} must be" in lines[0], lines
    assert result.stdout == ""


def test_a_folder_given_as_events_file_or_replay_file_says_it_is_a_folder(tmp_path):
    events = run("--simulate", "--no-dashboard", "--duration", "1", "--events-file",
                 str(tmp_path))
    assert events.returncode == 2 and "Traceback" not in events.stderr
    line = events.stderr.strip().splitlines()[-1]
    assert "is a folder" in line and "events.jsonl" in line and "Errno" not in line, line
    replay = run("--replay", str(tmp_path), "--no-dashboard", "--duration", "1")
    assert replay.returncode == 5
    assert "is a folder" in replay.stderr and "not found" not in replay.stderr, replay.stderr
