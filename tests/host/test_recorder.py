"""Recorder: kill -9 recovery, gaps, full disk, takes per site, permissions."""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from steth.edge import events as ev
from steth.edge.event_schema import parse_line, validate
from steth.host.recorder import Recorder
from steth.host.recovery import recover_session
from steth.host.session_files import read_take_audio, take_folders

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_child import CHUNK, GAP_AT, GAP_LEN, RATE, known_signal

CHILD = Path(__file__).resolve().parent / "record_child.py"
KILLS = 5


def expected_audio(n: int) -> np.ndarray:
    """What the child sent, as the recorder must store it (the gap zero-filled)."""
    audio = known_signal(0, n)
    audio[GAP_AT:GAP_AT + GAP_LEN] = 0
    return audio


def assert_private(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def run_and_kill(root: Path, seed: int, after_s: float) -> tuple[Path, list[tuple[int, float]],
                                                                 float]:
    child = subprocess.Popen([sys.executable, str(CHILD), str(root), str(seed)],
                             stdout=subprocess.PIPE, text=True, cwd=root)
    session_line = child.stdout.readline().split()
    assert session_line[0] == "session", session_line
    sent: list[tuple[int, float]] = []

    def read() -> None:
        for line in child.stdout:
            _, index, when = line.split()
            sent.append((int(index), float(when)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(after_s)
    killed_at = time.monotonic()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    reader.join(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return Path(session_line[1]), sent, killed_at


def test_kill_minus_9_at_random_moments_then_recover_is_bit_exact(tmp_path):
    rng = random.Random(20261121)
    moments = [rng.uniform(0.4, 2.5) for _ in range(KILLS)]
    for seed, after_s in enumerate(moments):
        session, sent, killed_at = run_and_kill(tmp_path, seed, after_s)
        assert sent, "child sent nothing before the kill"
        meta = recover_session(session)
        takes = take_folders(session)
        assert len(takes) == 1 and meta["state"] == "recovered"
        audio, rate = read_take_audio(takes[0])
        assert rate == RATE
        # everything handed to the recorder up to 1 s before the kill must be there
        due = max((i for i, when in sent if when <= killed_at - 1.0), default=0)
        assert audio.size >= due, (after_s, audio.size, due)
        assert audio.size <= sent[-1][0] + CHUNK  # nothing invented
        assert np.array_equal(audio, expected_audio(audio.size)), f"kill at {after_s:.2f} s"
        take = meta["takes"][0]
        assert take["samples"] == audio.size and take["first_index"] == 0
        if audio.size > GAP_AT:
            assert any(g.get("edge_gap", {}).get("lost_samples") == GAP_LEN
                       for g in take["gaps"])
            assert any(g.get("lost_samples") == GAP_LEN for g in take["gaps"])
        with open(takes[0] / "cycles.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        lines = (takes[0] / "cycles.jsonl").read_text().splitlines()
        assert len(rows) == len(lines) == take["cycles"]
        for row, line in zip(rows, lines, strict=True):
            event = parse_line(line)
            assert int(row["start"]) == event["start"] and row["finding"] == event["finding"]
            assert row["subtype"] == 'Fine Crackle, "coarse"?'
        assert json.loads((session / "session.json").read_text())["simulated"] is True
        assert not list(session.rglob("*.part")) and not list(session.rglob("*.tmp*"))
    assert_private(tmp_path)


def hello() -> dict:
    return ev.make_hello(device_id="D1", firmware="2.0", nominal_rate_hz=RATE, adc_bits=12,
                         model_name="m", model_version="1", model_hash="sha256:ab",
                         calibrated=True, transport="serial:/dev/ttyUSB0", simulated=False,
                         clock_synchronised=True, settings={"notch_hz": 50})


def test_session_json_takes_sites_and_wav_output(tmp_path):
    recorder = Recorder(tmp_path, patient="Pat-7_x", operator="dr a", sites="icbhi",
                        audio_format="wav", settings={"gain": 8}, recording=False)
    recorder.on_event(hello())
    recorder.on_audio(0, known_signal(0, 800), RATE)  # not recording: dropped
    assert recorder.toggle() is True
    recorder.on_audio(800, known_signal(800, 1600), RATE)
    recorder.on_event(ev.make_mark(label="cough", index=2400))
    assert recorder.mark("wheeze?").startswith("#1")
    assert recorder.next_site() == "Al"
    recorder.on_audio(2400, known_signal(2400, 800), RATE)
    recorder.close()
    meta = json.loads((recorder.session_dir / "session.json").read_text())
    assert recorder.session_dir.name.endswith("-Pat-7_x")
    assert meta["patient"] == "Pat-7_x" and meta["operator"] == "dr a"
    assert meta["sites"] == ["Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr"]
    assert meta["device"]["firmware"] == "2.0" and meta["model"]["hash"] == "sha256:ab"
    assert meta["settings"] == {"gain": 8, "notch_hz": 50}
    assert meta["clock_synchronised"] is True and meta["unsynchronised_clock"] is False
    assert meta["created_monotonic"] > 0 and meta["created_unix"] > 1.7e9
    assert [t["folder"] for t in meta["takes"]] == ["01-Tc", "02-Al"]
    assert [t["first_index"] for t in meta["takes"]] == [800, 2400]
    assert meta["takes"][0]["marks"][0]["label"] == "wheeze?"
    first, _ = read_take_audio(recorder.session_dir / "01-Tc")
    assert np.array_equal(first, known_signal(800, 1600))
    assert (recorder.session_dir / "02-Al" / "audio.wav").exists()
    assert_private(tmp_path)


def test_restart_and_overlap_and_rate_change(tmp_path):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(1000, known_signal(1000, 400), RATE)
    recorder.on_audio(1200, known_signal(1200, 400), RATE)  # 200 overlapping samples
    recorder.on_audio(0, known_signal(0, 160), RATE)  # device restarted: a new take
    recorder.on_audio(160, known_signal(160, 160), 4000)  # another rate: a new take
    recorder.close()
    takes = take_folders(recorder.session_dir)
    assert [t.name for t in takes] == ["01-p1", "02-p1", "03-p1"]
    assert read_take_audio(takes[2])[1] == 4000
    audio, _ = read_take_audio(takes[0])
    assert np.array_equal(audio, known_signal(1000, 600))


class FillingDisk:
    """os.write that fails with ENOSPC after ``capacity`` bytes (a partial write first)."""

    def __init__(self, capacity: int) -> None:
        self.left = capacity

    def __call__(self, fd: int, data: bytes) -> int:
        if self.left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.left) if self.left > 1 else 1
        n = os.write(fd, data[:n])
        self.left -= n
        return n


def test_full_disk_stops_recording_with_warning_and_keeps_data(tmp_path):
    warnings: list[str] = []
    recorder = Recorder(tmp_path, sites="p1", write=FillingDisk(5001),
                        on_warning=lambda message, _code: warnings.append(message))
    for start in range(0, 8000, CHUNK):
        recorder.on_audio(start, known_signal(start, CHUNK), RATE)
    assert not recorder.recording
    assert warnings and warnings[0].startswith("disk full: recording stopped, data kept")
    assert recorder.status().warning == warnings[0]
    recorder.close()
    meta = recover_session(recorder.session_dir)
    audio, _ = read_take_audio(take_folders(recorder.session_dir)[0])
    assert audio.size == 2500  # 5001 bytes written -> the stray half sample cut
    assert np.array_equal(audio, known_signal(0, 2500))
    assert meta["takes"][0]["state"] == "recovered (stopped: disk full)"
    assert meta["warnings"][0]["message"] == warnings[0]


def test_recover_cuts_torn_lines_and_is_idempotent(tmp_path):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(0, known_signal(0, 800), RATE)
    recorder.on_event(ev.make_cycle(cycle_id=0, start=0, end=800, rate_hz=RATE, wall_start=1.0,
                                    finding="Wheeze", p_crackle=0.1, p_wheeze=0.9))
    take = recorder._take
    assert take is not None
    take.sync()
    folder = take.folder
    with open(folder / "cycles.csv", "a") as handle:
        handle.write("1,800,16")  # a kill in the middle of a row
    with open(folder / "cycles.jsonl", "a") as handle:
        handle.write('{"v":1,"type":"cyc')
    first = recover_session(recorder.session_dir)
    second = recover_session(recorder.session_dir)
    assert first["takes"] == second["takes"]
    assert (folder / "cycles.csv").read_text().count("\n") == 2
    assert [parse_line(x)["finding"] for x in
            (folder / "cycles.jsonl").read_text().splitlines()] == ["Wheeze"]
    recorder._stop_flusher.set()


@pytest.mark.parametrize("bad", ["", ","])
def test_empty_site_list_is_a_clear_error(tmp_path, bad):
    from steth.host.session_files import RecorderError

    with pytest.raises(RecorderError, match="no auscultation sites"):
        Recorder(tmp_path, sites=bad)


def test_operator_mark_is_emitted_once_and_stored_once(tmp_path):
    import argparse

    from steth.host.recorder_cli import add_recorder_arguments, open_recorder

    parser = argparse.ArgumentParser()
    add_recorder_arguments(parser)
    assert open_recorder(parser.parse_args([])) is None
    emitted: list[dict] = []
    recorder = open_recorder(parser.parse_args(
        ["--record", str(tmp_path), "--patient", "P9", "--sites", "p3,p4", "--audio-format",
         "wav"]), emit=emitted.append)
    assert recorder is not None and recorder.recording and recorder.site == "p3"
    recorder.on_event(ev.mark_simulated(hello()) | {"simulated": True})
    recorder.on_audio(0, known_signal(0, 160), RATE)
    recorder.mark("rub")
    assert len(emitted) == 1 and validate(emitted[0]) == []
    assert emitted[0]["simulated"] is True and emitted[0]["index"] == 160
    recorder.on_event(emitted[0])  # the mark comes back through the event stream
    recorder.close()
    take = json.loads((recorder.session_dir / "session.json").read_text())["takes"][0]
    assert [m["label"] for m in take["marks"]] == ["rub"]
    events = (take_folders(recorder.session_dir)[0] / "events.jsonl").read_text()
    assert events.count('"rub"') == 1


def test_failed_conversion_warns_and_recover_finishes_it(tmp_path, monkeypatch):
    import steth.host.recorder as recorder_module

    def broken(folder, audio_format="flac"):
        raise OSError(errno.ENOSPC, "No space left on device")

    warnings: list[str] = []
    recorder = Recorder(tmp_path, sites="p1",
                        on_warning=lambda message, _code: warnings.append(message))
    recorder.on_audio(0, known_signal(0, 1600), RATE)
    monkeypatch.setattr(recorder_module, "finalize_take", broken)
    recorder.close()
    assert warnings and warnings[0].startswith("could not finish 01-p1: No space left")
    meta = json.loads((recorder.session_dir / "session.json").read_text())
    assert meta["takes"][0]["state"] == "needs-recover"
    monkeypatch.undo()
    meta = recover_session(recorder.session_dir)
    audio, _ = read_take_audio(take_folders(recorder.session_dir)[0])
    assert np.array_equal(audio, known_signal(0, 1600))
    assert meta["takes"][0]["state"] == "recovered (needs-recover)"
