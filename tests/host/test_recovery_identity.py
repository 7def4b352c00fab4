"""Recovery keeps who recorded whom and when, even when session.json is damaged."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from steth.edge import events as ev
from steth.host import sessions
from steth.host.recorder import Recorder
from steth.host.recovery import recover_session
from steth.host.session_files import read_take_audio, take_folders

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_child import RATE, known_signal

IDENTITY_FILE = "identity.json"  # the write-once copy of who and when


def crashed_session(root: Path, audio_format: str = "flac") -> Recorder:
    """A session killed mid-take: the part files stay, session.json is what it was."""
    recorder = Recorder(root, patient="P-017", operator="nurse b", sites="p3,p4",
                        audio_format=audio_format, settings={"gain": 8})
    recorder.on_event(ev.make_hello(
        device_id="D1", firmware="2.0", nominal_rate_hz=RATE, adc_bits=12, model_name="m",
        model_version="1", model_hash="sha256:ab", calibrated=True, transport="serial:x",
        simulated=False, clock_synchronised=True))
    recorder.on_audio(0, known_signal(0, 1600), RATE)
    assert recorder._take is not None
    recorder._take.sync()
    recorder._stop_flusher.set()
    return recorder


@pytest.mark.parametrize("damage", [b"", b'{"schema": 1, "session_id": "2026', b"\x00" * 64])
def test_recover_with_a_damaged_session_json_keeps_who_and_when(tmp_path, capsys, damage):
    recorder = crashed_session(tmp_path, audio_format="wav")
    created = recorder.meta["created_unix"]
    (recorder.session_dir / "session.json").write_bytes(damage)
    assert sessions.main(["--root", str(tmp_path), "recover", recorder.session_dir.name]) == 0
    capsys.readouterr()
    meta = json.loads((recorder.session_dir / "session.json").read_text())
    assert meta["patient"] == "P-017" and meta["operator"] == "nurse b"
    assert meta["created_unix"] == created and meta["sites"] == ["p3", "p4"]
    assert meta["settings"]["gain"] == 8 and meta["audio_format"] == "wav"
    assert meta["device"]["id"] == "D1" and meta["state"] == "recovered"
    take = take_folders(recorder.session_dir)[0]
    assert (take / "audio.wav").exists()  # the session's format, not the flac default
    assert np.array_equal(read_take_audio(take)[0], known_signal(0, 1600))
    assert meta["takes"][0]["started_unix"] == pytest.approx(created, abs=5)
    assert sessions.main(["--root", str(tmp_path), "show", recorder.session_dir.name]) == 0
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    assert f"patient P-017  operator nurse b  started {started}" in capsys.readouterr().out
    damaged = recorder.session_dir / "session.json.damaged"
    assert damaged.read_bytes() == damage  # kept for inspection, private like the rest
    assert stat.S_IMODE(damaged.stat().st_mode) == 0o600


def test_identity_copy_is_written_once_privately_and_survives_later_saves(tmp_path):
    recorder = crashed_session(tmp_path)
    path = recorder.session_dir / IDENTITY_FILE
    identity = json.loads(path.read_text())
    assert identity["patient"] == "P-017" and identity["operator"] == "nurse b"
    assert identity["created_unix"] == recorder.meta["created_unix"]
    assert identity["session_id"] == recorder.session_dir.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(recorder.session_dir.glob("*.tmp"))


def test_recover_with_both_copies_damaged_falls_back_to_the_folder_name(tmp_path):
    recorder = crashed_session(tmp_path)
    (recorder.session_dir / "session.json").write_text("{")
    (recorder.session_dir / IDENTITY_FILE).write_text("")
    meta = recover_session(recorder.session_dir)
    stamp = recorder.session_dir.name.split("-")[0]
    assert meta["patient"] == "P-017" and meta["operator"] is None
    assert time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(meta["created_unix"])) == stamp
    assert meta["created_unix"] > 1.7e9
