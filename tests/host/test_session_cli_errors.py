"""``steth-session`` faults a user meets: one line naming the file and the fix, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steth.host.recorder import Recorder
from steth.host.session_files import take_folders

STETH_SESSION = str(Path(sys.executable).with_name("steth-session"))


def steth_session(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STETH_SESSION, *args], capture_output=True, text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("steth-session: "), lines
    return lines[0]


def small_session(root: Path) -> Path:
    recorder = Recorder(root, sites="p1")
    rng = np.random.default_rng(0)
    recorder.on_audio(0, (rng.standard_normal(16000) * 500).astype(np.int16), 8000)
    recorder.close()
    return recorder.session_dir


@pytest.mark.parametrize("root", ["missing", "a-file"])
def test_list_under_a_root_that_is_not_a_folder_is_an_error(tmp_path, root):
    path = tmp_path / root
    if root == "a-file":
        path.write_text("not a folder\n")
    line = one_line_error(steth_session("--root", str(path), "list"))
    assert str(path) in line and "--root" in line


def test_list_under_an_empty_folder_is_still_fine(tmp_path):
    result = steth_session("--root", str(tmp_path), "list")
    assert result.returncode == 0 and "no sessions under" in result.stdout


@pytest.mark.parametrize("command", ["report", "reclassify"])
def test_damaged_audio_is_one_line_naming_the_file(tmp_path, command):
    session = small_session(tmp_path)
    audio = take_folders(session)[0] / "audio.flac"
    audio.write_bytes(b"fLaC" + b"\x13" * 64)  # torn: a header and nothing usable
    line = one_line_error(steth_session("--root", str(tmp_path), command, session.name))
    assert str(audio) in line and "damaged" in line and "backup" in line


@pytest.mark.parametrize("command", ["show", "report"])
def test_damaged_cycles_file_is_one_line_naming_the_file(tmp_path, command):
    session = small_session(tmp_path)
    cycles = take_folders(session)[0] / "cycles.jsonl"
    cycles.write_text('{"v":1,"type":"cycle","t"\n')
    line = one_line_error(steth_session("--root", str(tmp_path), command, session.name))
    assert str(cycles) in line and "damaged" in line


def test_recover_with_damaged_audio_is_one_line_naming_the_file(tmp_path):
    session = small_session(tmp_path)
    audio = take_folders(session)[0] / "audio.flac"
    audio.write_bytes(b"fLaC" + b"\x13" * 64)
    line = one_line_error(steth_session("--root", str(tmp_path), "recover", session.name))
    assert str(audio) in line and "backup" in line


def test_export_into_a_missing_folder_names_it_and_the_fix(tmp_path):
    session = small_session(tmp_path)
    out = tmp_path / "no-such-folder" / "exam.zip"
    line = one_line_error(steth_session("--root", str(tmp_path), "export", session.name,
                                        "-o", str(out)))
    assert str(out.parent) in line and "--output" in line and ".partial" not in line
